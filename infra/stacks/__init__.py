"""The CDK stack of the platform and its deployment configuration."""

"""Infrastructure of the platform: the CDK app and the Docker-free local stack (`infra.local`)."""

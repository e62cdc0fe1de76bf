"""What every S3 bucket of the stack shares, and its access-log buckets."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

LOG_RETENTION_DAYS = 90


def private_bucket(scope: Construct, construct_id: str, *, production: bool, **settings: Any) -> s3.Bucket:
    """A bucket with S3-managed encryption, all public access blocked and TLS enforced; retained in
    production, emptied and deleted with any other stage. ``settings`` are further ``s3.Bucket`` props."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        removal_policy=RemovalPolicy.RETAIN if production else RemovalPolicy.DESTROY,
        auto_delete_objects=not production,
        **settings,
    )


def log_bucket(scope: Construct, construct_id: str, *, production: bool, expiry_rule: str) -> s3.Bucket:
    """A private bucket for access logs, whose objects expire after ``LOG_RETENTION_DAYS`` (rule id
    ``expiry_rule``). S3 server access logs and CloudFront standard logs are written with ACLs, which
    the bucket must accept."""
    return private_bucket(
        scope,
        construct_id,
        production=production,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        lifecycle_rules=[s3.LifecycleRule(id=expiry_rule, expiration=Duration.days(LOG_RETENTION_DAYS))],
    )

"""Storage: the bucket for uploaded files. Clients PUT them with presigned URLs (the documents function
signs them); every new object's event goes to the ingest queue, whose function reads the object."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.buckets import log_bucket, private_bucket

# Objects are keyed <org_id>/<document_id> (ragcore.storage.object_key), so every object is an upload.
UPLOAD_KEY_PATTERN = "*/*"


class Storage(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, production: bool, cors_origins: tuple[str, ...]
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = log_bucket(
            self, "AccessLogs", production=production, expiry_rule="expire-access-logs"
        )
        cors = (
            [
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT],
                    allowed_origins=list(cors_origins),
                    allowed_headers=["content-type", "content-md5", "x-amz-*"],
                    max_age=3000,
                )
            ]
            if cors_origins
            else None
        )
        self.bucket = private_bucket(
            self,
            "Uploads",
            production=production,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="uploads/",
            cors=cors,
            lifecycle_rules=[
                # Abandoned uploads: a multipart upload never completed is dropped after a day. (A presigned
                # PUT never used leaves no object at all; its document is failed by the reaper.)
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
                # Deleting a document deletes every version of its object; delete markers left alone
                # (an overwritten key whose old versions expired) are removed too.
                s3.LifecycleRule(id="remove-expired-delete-markers", expired_object_delete_marker=True),
                s3.LifecycleRule(
                    id="tier-and-expire-old-versions",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(30),
                        )
                    ],
                    noncurrent_version_expiration=Duration.days(30),
                ),
            ],
        )

    def notify(self, queue: sqs.IQueue) -> None:
        """Every object created in the bucket is announced on ``queue`` (the ingest queue); CDK gives S3
        the right to send there, for this bucket only, in the queue's policy."""
        self.bucket.add_event_notification(s3.EventType.OBJECT_CREATED, s3n.SqsDestination(queue))

    def allow_uploads(self, function: lambda_.IFunction) -> None:
        """What the documents function needs: signing presigned PUTs (the URL carries the signer's
        rights, so it may put objects) and deleting every version of a document's object."""
        objects = self.bucket.arn_for_objects(UPLOAD_KEY_PATTERN)
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
            resource_arns=[objects],
        )
        iam.Grant.add_to_principal(
            grantee=function, actions=["s3:ListBucketVersions"], resource_arns=[self.bucket.bucket_arn]
        )

    def allow_ingest(self, function: lambda_.IFunction) -> None:
        """What the ingest function needs: reading objects, and listing so that a missing object is a
        404 (without s3:ListBucket, S3 answers 403 for a key that does not exist)."""
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resource_arns=[self.bucket.arn_for_objects(UPLOAD_KEY_PATTERN)],
        )
        iam.Grant.add_to_principal(
            grantee=function, actions=["s3:ListBucket"], resource_arns=[self.bucket.bucket_arn]
        )

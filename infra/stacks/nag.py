"""cdk-nag (AwsSolutions) suppressions. Each one names the rule, where it applies, and why.

Suppressions are narrow: by construct, and for IAM rules by the exact finding (``applies_to``), so a
new wildcard or managed policy elsewhere still fails the synthesis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Stack
from cdk_nag import NagPackSuppression, NagSuppressions

if TYPE_CHECKING:
    from infra.stacks.rag_stack import RagPlatformStack

BASIC_EXECUTION = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
VPC_EXECUTION = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
APIGW_LOGS = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"


CROSS_REGION_PREFIXES = ("us", "eu", "apac", "us-gov", "global", "jp", "au", "ca")


def _s(rule: str, reason: str, applies_to: list[str] | None = None) -> NagPackSuppression:
    return NagPackSuppression(id=f"AwsSolutions-{rule}", reason=reason, applies_to=applies_to)


def apply_suppressions(stack: RagPlatformStack) -> None:
    cfg = stack.config

    # --- API ---------------------------------------------------------------------------------------
    NagSuppressions.add_resource_suppressions(
        stack.api.api,
        [
            _s(
                "APIG4",
                "Authorization is enforced inside the functions: every route except register, login "
                "and health requires a bearer JWT (HS256; signature, issuer, audience and expiry "
                "verified; the "
                "tenant is taken only from its claims). The platform issues its own tokens, so there is no "
                "Cognito pool or IAM caller to authorize at the gateway, and a Lambda authorizer would "
                "verify "
                "the same token twice per request.",
            ),
            _s(
                "COG4",
                "Tokens are issued by the platform's auth function, not by a Cognito user pool; they are "
                "verified in the functions (see APIG4).",
            ),
            _s(
                "APIG2",
                "Request bodies are validated by the functions (Powertools resolver with pydantic models, "
                "422 with field errors), which are also the source of docs/openapi.json; duplicating "
                "the schemas "
                "as API Gateway models would let the two drift.",
            ),
        ],
        apply_to_children=True,
    )
    NagSuppressions.add_resource_suppressions(
        stack.api.api,
        [
            _s(
                "IAM4",
                "API Gateway's account-level role for writing execution logs to CloudWatch uses the "
                "AWS-managed policy made for exactly that.",
                [APIGW_LOGS],
            )
        ],
        apply_to_children=True,
    )

    # --- functions ---------------------------------------------------------------------------------
    for fn in stack.functions.values():
        NagSuppressions.add_resource_suppressions(
            fn,
            [
                _s(
                    "L1",
                    "Pinned to python3.12 on purpose: the dependency layers are built from CPython 3.12 "
                    "wheels (pip --python-version 3.12) and template-local.yaml uses the same runtime; "
                    "both move "
                    "together when the runtime is bumped.",
                ),
                _s(
                    "IAM4",
                    "AWS-managed baseline policies for Lambda: writing its own log streams and managing "
                    "the ENIs of a VPC-attached function. Everything else is granted per resource.",
                    [BASIC_EXECUTION, VPC_EXECUTION],
                ),
                _s(
                    "IAM5",
                    "X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) supports no "
                    "resource-level permissions; it is the only wildcard resource in these policies.",
                    ["Resource::*"],
                ),
            ],
            apply_to_children=True,
        )

    # Cross-region inference profiles route to the same model in any of the profile's regions.
    for service, fn in stack.functions.items():
        for model_id in stack.bedrock_models.get(service, []):
            if "." in model_id and model_id.split(".", 1)[0] in CROSS_REGION_PREFIXES:
                base = model_id.split(".", 1)[1]
                NagSuppressions.add_resource_suppressions(
                    fn,
                    [
                        _s(
                            "IAM5",
                            f"Bedrock inference profile {model_id} routes each request to {base} in one of "
                            "several regions chosen by AWS; the grant names that one model, only its "
                            "region is open.",
                            [f"Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/{base}"],
                        )
                    ],
                    apply_to_children=True,
                )

    # --- database ----------------------------------------------------------------------------------
    instance = stack.database.instance
    NagSuppressions.add_resource_suppressions(
        instance,
        [
            _s(
                "RDS11",
                "Standard port 5432 kept: the instance is in isolated subnets and its security group admits "
                "only the RDS Proxy and the migrations function; a non-standard port would add no "
                "protection.",
            )
        ],
    )
    if not cfg.db_multi_az:
        NagSuppressions.add_resource_suppressions(
            instance,
            [
                _s(
                    "RDS3",
                    f"Stage '{cfg.stage}' runs single-AZ to keep its cost down; production stages set "
                    "dbMultiAz (cdk.json stages.prod).",
                )
            ],
        )
    if not cfg.production:
        NagSuppressions.add_resource_suppressions(
            instance,
            [
                _s(
                    "RDS10",
                    f"Stage '{cfg.stage}' is disposable (`cdk destroy` must work); production stages get "
                    "deletion protection and a final snapshot.",
                )
            ],
        )

    # --- secrets -----------------------------------------------------------------------------------
    NagSuppressions.add_resource_suppressions(
        stack.jwt_secret,
        [
            _s(
                "SMG4",
                "Rotating the HS256 signing key invalidates every issued token at once; tokens live one "
                "hour, and the key is rotated deliberately (README: Deploy to AWS) rather than on a "
                "schedule.",
            )
        ],
    )

    # --- upload bucket ------------------------------------------------------------------------------
    objects = f"Resource::<{stack.get_logical_id(stack.storage.bucket.node.default_child)}.Arn>/*/*"
    for service, reason in (
        (
            "documents",
            "Upload URLs are presigned for <org_id>/<document_id> of any tenant, so the documents function "
            "may put (and, deleting a document, delete) any upload object; object keys have no other shape.",
        ),
        ("ingest", "The ingest function reads the upload of any tenant's document (keys <org>/<document>)."),
    ):
        NagSuppressions.add_resource_suppressions(
            stack.functions[service].function, [_s("IAM5", reason, [objects])], apply_to_children=True
        )

    # --- web console (static site) -------------------------------------------------------------------
    NagSuppressions.add_resource_suppressions(
        stack.site.distribution,
        [
            _s(
                "CFR4",
                "The console is served on the distribution's own *.cloudfront.net name, whose default "
                "certificate CloudFront pins to the TLSv1 security policy (TLSv1.2_2021 is set and applies "
                "once a custom domain with an ACM certificate is attached). Browsers negotiate TLS 1.2 or "
                "1.3 there; the page holds no secret, the API it calls is TLS 1.2+ only.",
            ),
            _s(
                "CFR1",
                "The console is a public sign-in page for every tenant's people, wherever they are: no "
                "geographic restriction applies to it (access is decided by the API's tokens).",
            ),
            _s(
                "CFR2",
                "The distribution serves static files only, with GET and HEAD; the API it calls has its "
                "own throttling. A WAF web ACL can be attached per deployment where a policy asks for it.",
            ),
        ],
    )

    # --- CDK framework functions ---------------------------------------------------------------------
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            NagSuppressions.add_resource_suppressions(
                child,
                [
                    _s(
                        "IAM4",
                        "CDK's bucket-notifications helper (configures the upload bucket's events to the "
                        "ingest queue at deploy time) uses the basic Lambda execution policy.",
                        [BASIC_EXECUTION],
                    ),
                    _s(
                        "IAM5",
                        "CDK's bucket-notifications helper puts the notification configuration of the "
                        "bucket it is given; CDK scopes it with a wildcard resource.",
                        ["Resource::*"],
                    ),
                ],
                apply_to_children=True,
            )
        if child.node.id.startswith("Custom::CDKBucketDeployment"):
            NagSuppressions.add_resource_suppressions(
                child,
                [
                    _s(
                        "L1",
                        "CDK's BucketDeployment handler (copies the built console into its bucket at "
                        "deploy time); its runtime is chosen and updated by aws-cdk-lib.",
                    ),
                    _s(
                        "IAM4",
                        "CDK's BucketDeployment handler uses the basic Lambda execution policy to write "
                        "its own logs.",
                        [BASIC_EXECUTION],
                    ),
                    _s(
                        "IAM5",
                        "CDK's BucketDeployment grants: read the staged asset objects of the CDK "
                        "bootstrap bucket, write and list the console bucket's objects, and create "
                        "CloudFront invalidations (an action without resource-level scoping there).",
                        [
                            "Action::s3:GetBucket*",
                            "Action::s3:GetObject*",
                            "Action::s3:List*",
                            "Action::s3:Abort*",
                            "Action::s3:DeleteObject*",
                            "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-"
                            "<AWS::Region>/*",
                            f"Resource::<{stack.get_logical_id(stack.site.bucket.node.default_child)}.Arn>/*",
                            "Resource::*",
                        ],
                    ),
                ],
                apply_to_children=True,
            )
        if child.node.id.startswith("LogRetention"):
            NagSuppressions.add_resource_suppressions(
                child,
                [
                    _s(
                        "IAM4",
                        "CDK's log-retention helper (sets the retention of the RDS log groups) uses the "
                        "basic Lambda execution policy.",
                        [BASIC_EXECUTION],
                    ),
                    _s(
                        "IAM5",
                        "CDK's log-retention helper must be able to set the retention of log groups "
                        "that RDS creates on its own, whose ARNs are not known at deploy time.",
                        ["Resource::*"],
                    ),
                ],
                apply_to_children=True,
            )


__all__ = ["apply_suppressions", "Stack"]

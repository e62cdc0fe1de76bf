"""Site: the web console as a static site. A private bucket (all public access blocked, TLS only) behind
CloudFront with Origin Access Control, HTTPS only, security headers; the built files (web/dist) and a
``config.json`` naming the API and stream URLs are copied in at deploy time.

The distribution exists before the functions (its origin joins the allowed CORS origins of the API, the
stream URL and the upload bucket), and the files are deployed once the API and the stream URL exist
(:meth:`StaticSite.deploy`), so nothing depends on itself.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.constructs.buckets import log_bucket, private_bucket

# Vite names what it puts under assets/ by content hash: those files never change and are cached for a
# year; index.html and config.json are revalidated on every load so that a deploy shows at once.
ASSETS_DIR = "assets"
IMMUTABLE = s3deploy.CacheControl.from_string("public, max-age=31536000, immutable")
REVALIDATE = s3deploy.CacheControl.from_string("no-cache")


def content_security_policy() -> str:
    """The page may talk only to its own origin, the REST API, the stream Function URL and the upload
    bucket of its region (hosts named by wildcard: the exact ones are created after the distribution,
    which they reference). A presigned upload URL names the bucket's virtual host, regional or, in
    us-east-1, global: both spellings are allowed."""
    api = f"https://*.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
    stream = f"https://*.lambda-url.{Aws.REGION}.on.aws"
    uploads = f"https://*.s3.{Aws.REGION}.{Aws.URL_SUFFIX} https://*.s3.{Aws.URL_SUFFIX}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {api} {stream} {uploads}; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'; object-src 'none'"
    )


class StaticSite(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, production: bool) -> None:
        super().__init__(scope, construct_id)
        # CloudFront writes its standard logs here.
        self.logs = log_bucket(self, "Logs", production=production, expiry_rule="expire-site-logs")
        self.bucket = private_bucket(
            self,
            "Files",
            production=production,
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="bucket/",
        )
        self.headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="RAG console: CSP, HSTS, nosniff, no framing, no referrer",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(), override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365), include_subdomains=True, override=True
                ),
            ),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="RAG platform web console",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.headers,
                compress=True,
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
        )
        # The origin browsers send (no trailing slash), for the CORS rules of the API and the stream URL.
        self.origin = f"https://{self.distribution.distribution_domain_name}"

    def deploy(self, files: Path, *, api_base_url: str, stream_url: str) -> None:
        """Copies the built console into the bucket with ``config.json`` naming the API (``…/api/v1``)
        and the stream endpoint (the full URL of POST /api/v1/query), and invalidates what may change.
        Hashed assets go first and are never pruned, so a page loaded before the deploy keeps working."""
        assets = s3deploy.BucketDeployment(
            self,
            "DeployAssets",
            sources=[s3deploy.Source.asset(str(files / ASSETS_DIR))],
            destination_bucket=self.bucket,
            destination_key_prefix=f"{ASSETS_DIR}/",
            cache_control=[IMMUTABLE],
            prune=False,
            memory_limit=256,
        )
        pages = s3deploy.BucketDeployment(
            self,
            "DeployPages",
            sources=[
                s3deploy.Source.asset(str(files), exclude=[ASSETS_DIR, f"{ASSETS_DIR}/**", "config.json"]),
                s3deploy.Source.json_data(
                    "config.json", {"apiBaseUrl": api_base_url, "streamUrl": stream_url}
                ),
            ],
            destination_bucket=self.bucket,
            cache_control=[REVALIDATE],
            prune=False,
            distribution=self.distribution,
            distribution_paths=["/", "/index.html", "/config.json"],
            memory_limit=256,
        )
        pages.node.add_dependency(assets)
        self.config_values = {"apiBaseUrl": api_base_url, "streamUrl": stream_url}

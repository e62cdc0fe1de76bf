"""Database: RDS for PostgreSQL 17 (+ pgvector) behind RDS Proxy, credentials in Secrets Manager.

Two secrets:
* the master secret (generated; schema owner) is used only by the migrations function, directly
  against the instance;
* the application secret (generated; user ``rag_app``) is the only login the proxy accepts. The
  migrations create that role as a non-owner without BYPASSRLS and set its password from this secret,
  so every request-serving function works under forced row-level security.
Both rotate on a schedule (single-user rotation); the proxy reads the current value on each login.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

DB_NAME = "rag"
DB_PORT = 5432
MASTER_USER = "rag_owner"
APP_USER = "rag_app"
ENGINE_MAJOR = "17"

# Session settings row-level security depends on, pinned in the parameter group rather than trusted
# to defaults: row_security on (a policy is never silently bypassed: queries error instead), TLS
# required for every connection, SCRAM password hashes (also what the proxy speaks to clients).
PARAMETERS = {
    "row_security": "1",
    "rds.force_ssl": "1",
    "password_encryption": "scram-sha-256",
    "shared_preload_libraries": "pg_stat_statements",
    "log_min_duration_statement": "2000",
    "log_connections": "1",
    "log_disconnections": "1",
    "log_lock_waits": "1",
}
_EXCLUDE = " %+~`#$&*()|[]{}:;<>?!'/@\"\\,="


class Database(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        secrets_endpoint: ec2.IInterfaceVpcEndpoint,
        instance_class: str,
        allocated_storage_gib: int,
        max_allocated_storage_gib: int,
        multi_az: bool,
        backup_retention_days: int,
        performance_insights: bool,
        production: bool,
        rotation_days: int,
        log_retention: logs.RetentionDays,
        engine_version: str,
    ) -> None:
        super().__init__(scope, construct_id)
        engine = rds.DatabaseInstanceEngine.postgres(
            version=rds.PostgresEngineVersion.of(engine_version, ENGINE_MAJOR)
        )
        self.parameter_group = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            description="RLS-ready PostgreSQL settings",
            parameters=PARAMETERS,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=vpc,
            description="PostgreSQL instance",
            allow_all_outbound=False,
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            instance_type=ec2.InstanceType(instance_class),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            credentials=rds.Credentials.from_generated_secret(MASTER_USER, exclude_characters=_EXCLUDE),
            database_name=DB_NAME,
            port=DB_PORT,
            parameter_group=self.parameter_group,
            storage_encrypted=True,
            storage_type=rds.StorageType.GP3,
            allocated_storage=allocated_storage_gib,
            max_allocated_storage=max_allocated_storage_gib,
            multi_az=multi_az,
            backup_retention=Duration.days(backup_retention_days),
            delete_automated_backups=not production,
            deletion_protection=production,
            removal_policy=RemovalPolicy.SNAPSHOT if production else RemovalPolicy.DESTROY,
            publicly_accessible=False,
            iam_authentication=True,
            # Pinned minor version: an automatic upgrade would leave the template naming an older
            # version than the instance runs, and the next deploy would try to go back to it.
            auto_minor_version_upgrade=False,
            copy_tags_to_snapshot=True,
            enable_performance_insights=performance_insights,
            cloudwatch_logs_exports=["postgresql", "upgrade"],
            cloudwatch_logs_retention=log_retention,
            ca_certificate=rds.CaCertificate.RDS_CA_RSA2048_G1,
        )
        self.master_secret: secretsmanager.ISecret = self.instance.secret  # type: ignore[assignment]
        self.instance.add_rotation_single_user(
            automatically_after=Duration.days(rotation_days),
            vpc_subnets=subnets,
            endpoint=secrets_endpoint,
            rotate_immediately_on_update=False,
        )

        self.app_secret_resource = rds.DatabaseSecret(
            self, "AppSecret", username=APP_USER, exclude_characters=_EXCLUDE
        )
        # attached: the secret also carries host, port and dbname (what the rotation function needs)
        self.app_secret = self.app_secret_resource.attach(self.instance)
        self.app_rotation = secretsmanager.SecretRotation(
            self,
            "AppSecretRotation",
            application=secretsmanager.SecretRotationApplication.POSTGRES_ROTATION_SINGLE_USER,
            secret=self.app_secret,
            target=self.instance,
            vpc=vpc,
            vpc_subnets=subnets,
            endpoint=secrets_endpoint,
            automatically_after=Duration.days(rotation_days),
            rotate_immediately_on_update=False,
        )

        self.proxy_security_group = ec2.SecurityGroup(
            self, "ProxySecurityGroup", vpc=vpc, description="RDS Proxy", allow_all_outbound=False
        )
        self.proxy = self.instance.add_proxy(
            "Proxy",
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.proxy_security_group],
            secrets=[self.app_secret],
            require_tls=True,
            iam_auth=False,
            client_password_auth_type=rds.ClientPasswordAuthType.POSTGRES_SCRAM_SHA_256,
            max_connections_percent=90,
            max_idle_connections_percent=50,
            idle_client_timeout=Duration.minutes(30),
            borrow_timeout=Duration.seconds(30),
            debug_logging=False,
        )
        self.proxy_security_group.add_egress_rule(
            self.security_group, ec2.Port.tcp(DB_PORT), "proxy to PostgreSQL"
        )
        self.security_group.add_ingress_rule(
            self.proxy_security_group, ec2.Port.tcp(DB_PORT), "from RDS Proxy"
        )

    def allow_app(self, connectable: ec2.IConnectable) -> None:
        """Request-serving functions reach PostgreSQL only through the proxy."""
        self.proxy_security_group.connections.allow_from(connectable, ec2.Port.tcp(DB_PORT), "app to proxy")

    def allow_owner(self, connectable: ec2.IConnectable) -> None:
        """The migrations function talks to the instance directly (DDL, no proxy pinning)."""
        self.instance.connections.allow_from(connectable, ec2.Port.tcp(DB_PORT), "migrations to PostgreSQL")

    def app_environment(self) -> dict[str, str]:
        return {
            "DB_SECRET_ARN": self.app_secret.secret_arn,
            "DB_HOST": self.proxy.endpoint,
            "DB_PORT": str(DB_PORT),
            "DB_NAME": DB_NAME,
            "DB_APP_ROLE": APP_USER,
        }

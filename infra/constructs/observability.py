"""Observability: one dashboard and the alarms an operator is paged for (via an SNS topic)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.service_function import ServiceFunction

FIVE_MINUTES = Duration.minutes(5)


METRICS_NAMESPACE = "RagPlatform"  # POWERTOOLS_METRICS_NAMESPACE of every function

# The platform's own metrics (ragcore.observability), by the functions (service dimension) that emit
# them. The tenant is a property of each EMF record, not a dimension: per-tenant figures come from Logs
# Insights over the functions' log groups, which keeps the number of CloudWatch metrics fixed.
QUERY_STAGES = ("QueryEmbedLatency", "QuerySearchLatency", "QueryGenerateLatency")
INGEST_STAGES = ("IngestChunkLatency", "IngestEmbedLatency", "IngestStoreLatency")
PROVIDER_FAILURES = (
    "EmbeddingProviderErrors",
    "EmbeddingProviderThrottles",
    "GenerationProviderErrors",
    "GenerationProviderThrottles",
)
QUERY_SERVICES = ("query", "stream")  # both answer questions (sync and streamed)
EMBEDDING_SERVICES = ("query", "stream", "ingest")


def platform_metric(name: str, service: str, statistic: str) -> cw.Metric:
    """A metric of ragcore.observability as emitted by one function."""
    return cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service},
        period=FIVE_MINUTES,
        statistic=statistic,
        label=f"{name} ({service}, {statistic})",
    )


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        api: apigw.RestApi,
        functions: dict[str, ServiceFunction],
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        instance: rds.DatabaseInstance,
        proxy: rds.DatabaseProxy,
        db_connections_threshold: int,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "AlarmTopic", display_name=f"{dashboard_name} alarms", enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cw.Alarm] = {}

        def alarm(
            name: str, metric: cw.IMetric, threshold: float, description: str, periods: int = 1
        ) -> cw.Alarm:
            a = cw.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            a.add_alarm_action(action)
            a.add_ok_action(action)
            self.alarms[name] = a
            return a

        server_errors = api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        requests = api.metric_count(period=FIVE_MINUTES, statistic="Sum")
        error_rate = cw.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"errors": server_errors, "requests": requests},
            label="5xx rate (%)",
            period=FIVE_MINUTES,
        )
        alarm("Api5xxRate", error_rate, 5, "More than 5% of API requests answered 5xx", periods=2)
        ingest = functions["ingest"].function
        alarm(
            "IngestErrors",
            ingest.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
            1,
            "The ingest function failed whole invocations (not single records)",
        )
        # Emitted by the ingest function (Powertools Metrics, EMF) for each document that ends failed:
        # partial batch failures never fail the invocation, so Lambda's Errors metric cannot see them.
        alarm(
            "IngestDocumentsFailed",
            cw.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name="DocumentsFailed",
                dimensions_map={"service": "ingest"},
                period=FIVE_MINUTES,
                statistic="Sum",
            ),
            1,
            "Documents ended 'failed' (unreadable content, or ingestion gave up after its attempts)",
        )
        dlq_depth = dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=FIVE_MINUTES, statistic="Maximum"
        )
        alarm("DeadLetterQueueDepth", dlq_depth, 1, "Ingest messages gave up and landed in the DLQ")
        oldest = queue.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum")
        alarm("IngestBacklogAge", oldest, 900, "Ingest queue has messages older than 15 minutes", periods=2)
        db_connections = instance.metric_database_connections(period=FIVE_MINUTES, statistic="Maximum")
        alarm(
            "DatabaseConnections",
            db_connections,
            db_connections_threshold,
            "PostgreSQL connections close to the instance limit",
            periods=2,
        )
        db_cpu = instance.metric_cpu_utilization(period=FIVE_MINUTES, statistic="Average")
        alarm("DatabaseCpu", db_cpu, 80, "PostgreSQL CPU above 80%", periods=3)
        for name, fn in functions.items():
            if name == "ingest":
                continue
            alarm(
                f"{name.capitalize()}Throttles",
                fn.function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                1,
                f"The {name} function was throttled",
            )

        proxy_clients = cw.Metric(
            namespace="AWS/RDS",
            metric_name="ClientConnections",
            dimensions_map={"ProxyName": proxy.db_proxy_name},
            period=FIVE_MINUTES,
            statistic="Maximum",
        )
        # A pinned session holds a database connection for one client only, which defeats the proxy. The
        # functions never pin (no server-side prepared statements, tenant set per transaction): any
        # pinning is a regression to look at.
        pinned = cw.Metric(
            namespace="AWS/RDS",
            metric_name="DatabaseConnectionsCurrentlySessionPinned",
            dimensions_map={"ProxyName": proxy.db_proxy_name},
            period=FIVE_MINUTES,
            statistic="Maximum",
        )
        alarm(
            "ProxySessionPinning",
            pinned,
            1,
            "RDS Proxy sessions are pinned to database connections (prepared statements, session state)",
            periods=2,
        )
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="API requests / 4xx / 5xx",
                left=[requests, api.metric_client_error(period=FIVE_MINUTES, statistic="Sum"), server_errors],
            ),
            cw.GraphWidget(
                title="API latency (p50, p99)",
                left=[
                    api.metric_latency(period=FIVE_MINUTES, statistic="p50"),
                    api.metric_latency(period=FIVE_MINUTES, statistic="p99"),
                ],
            ),
            cw.GraphWidget(title="5xx rate (%)", left=[error_rate]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Function errors",
                left=[
                    f.function.metric_errors(period=FIVE_MINUTES, statistic="Sum") for f in functions.values()
                ],
            ),
            cw.GraphWidget(
                title="Function duration p95",
                left=[
                    f.function.metric_duration(period=FIVE_MINUTES, statistic="p95")
                    for f in functions.values()
                ],
            ),
            cw.GraphWidget(
                title="Function throttles",
                left=[
                    f.function.metric_throttles(period=FIVE_MINUTES, statistic="Sum")
                    for f in functions.values()
                ],
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Ingest queue",
                left=[
                    queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES),
                    queue.metric_approximate_number_of_messages_not_visible(period=FIVE_MINUTES),
                ],
                right=[oldest],
            ),
            cw.GraphWidget(title="Dead-letter queue depth", left=[dlq_depth]),
            cw.GraphWidget(
                title="Database connections",
                left=[db_connections, proxy_clients, pinned],
                right=[db_cpu],
            ),
        )
        query_services = [s for s in QUERY_SERVICES if s in functions]
        embedding_services = [s for s in EMBEDDING_SERVICES if s in functions]
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Query latency per stage, p50 (ms)",
                left=[platform_metric(m, s, "p50") for s in query_services for m in QUERY_STAGES],
            ),
            cw.GraphWidget(
                title="Query latency per stage, p99 (ms)",
                left=[platform_metric(m, s, "p99") for s in query_services for m in QUERY_STAGES],
            ),
            cw.GraphWidget(
                title="Ingest latency per stage, p50 / p99 (ms)",
                left=[platform_metric(m, "ingest", "p50") for m in INGEST_STAGES],
                right=[platform_metric(m, "ingest", "p99") for m in INGEST_STAGES],
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Chunks embedded / documents ready and failed",
                left=[platform_metric("ChunksEmbedded", "ingest", "Sum")],
                right=[
                    platform_metric("DocumentsReady", "ingest", "Sum"),
                    platform_metric("DocumentsFailed", "ingest", "Sum"),
                ],
            ),
            cw.GraphWidget(
                title="Embedding provider errors and throttles",
                left=[
                    platform_metric(m, s, "Sum")
                    for s in embedding_services
                    for m in PROVIDER_FAILURES
                    if m.startswith("Embedding")
                ],
            ),
            cw.GraphWidget(
                title="Generation provider errors and throttles",
                left=[
                    platform_metric(m, s, "Sum")
                    for s in query_services
                    for m in PROVIDER_FAILURES
                    if m.startswith("Generation")
                ],
            ),
        )
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24),
        )

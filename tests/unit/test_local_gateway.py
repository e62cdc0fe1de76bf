"""The local API Gateway's rules: route matching, proxy events, proxy responses, SQS batch semantics."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.local.events import (
    LambdaContext,
    MalformedProxyResponse,
    MatchStatus,
    RouteTable,
    build_proxy_event,
    build_sqs_event,
    messages_to_delete,
    normalise_path,
    queue_arn,
    translate_proxy_response,
)
from infra.local.template import Route, TemplateError, load_template, resolve_environment

REPO = Path(__file__).resolve().parents[2]

ROUTES = RouteTable(
    [
        Route("POST", "/api/v1/documents", "Docs"),
        Route("GET", "/api/v1/documents", "Docs"),
        Route("GET", "/api/v1/documents/{id}", "Docs"),
        Route("DELETE", "/api/v1/documents/{id}", "Docs"),
        Route("POST", "/api/v1/documents/{id}/reingest", "Docs"),
        Route("GET", "/api/v1/documents/search", "Search"),
        Route("ANY", "/files/{proxy+}", "Files"),
    ]
)


# ---------------------------------------------------------------------------------------------- routes


def test_literal_path_matches_without_parameters():
    match = ROUTES.match("GET", "/api/v1/documents")
    assert match.status is MatchStatus.FOUND
    assert match.route == Route("GET", "/api/v1/documents", "Docs")
    assert match.path_parameters == {}


def test_path_parameter_is_captured():
    match = ROUTES.match("delete", "/api/v1/documents/abc-123")
    assert match.status is MatchStatus.FOUND
    assert match.route.path == "/api/v1/documents/{id}"
    assert match.path_parameters == {"id": "abc-123"}


def test_nested_path_parameter():
    match = ROUTES.match("POST", "/api/v1/documents/42/reingest")
    assert match.route.path == "/api/v1/documents/{id}/reingest"
    assert match.path_parameters == {"id": "42"}


def test_literal_segment_beats_parameter():
    assert ROUTES.match("GET", "/api/v1/documents/search").route.function == "Search"


def test_the_literal_resource_decides_the_methods_without_falling_back_to_a_parameter():
    # As API Gateway: /documents/search is its own resource; DELETE there is not DELETE /documents/{id}.
    match = ROUTES.match("DELETE", "/api/v1/documents/search")
    assert match.status is MatchStatus.METHOD_NOT_ALLOWED
    assert match.allowed_methods == ("GET",)


def test_greedy_parameter_takes_the_rest_and_any_method():
    match = ROUTES.match("PATCH", "/files/a/b/c.txt")
    assert match.route.function == "Files"
    assert match.path_parameters == {"proxy": "a/b/c.txt"}
    assert ROUTES.match("GET", "/files").status is MatchStatus.NOT_FOUND


def test_trailing_and_double_slashes_are_ignored():
    assert normalise_path("//api/v1//documents/") == "/api/v1/documents"
    assert ROUTES.match("GET", "/api/v1/documents/").status is MatchStatus.FOUND


def test_unknown_path_is_not_found():
    assert ROUTES.match("GET", "/api/v1/nothing").status is MatchStatus.NOT_FOUND
    assert ROUTES.match("GET", "/api/v1/documents/1/2/3").status is MatchStatus.NOT_FOUND


def test_known_path_with_wrong_method_is_method_not_allowed():
    match = ROUTES.match("PUT", "/api/v1/documents/7")
    assert match.status is MatchStatus.METHOD_NOT_ALLOWED
    assert match.allowed_methods == ("DELETE", "GET")


# ------------------------------------------------------------------------------------------- the event

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _event(**overrides):
    args = dict(
        method="GET",
        path="/api/v1/documents/abc",
        route=Route("GET", "/api/v1/documents/{id}", "Docs"),
        path_parameters={"id": "abc"},
        headers=[("host", "127.0.0.1:8080"), ("user-agent", "pytest"), ("authorization", "Bearer t")],
        stage="v1",
        source_ip="10.1.2.3",
        request_id="req-1",
        now=NOW,
    )
    args.update(overrides)
    return build_proxy_event(**args)


def test_event_has_the_rest_proxy_shape():
    event = _event()
    assert set(event) == {
        "resource", "path", "httpMethod", "headers", "multiValueHeaders", "queryStringParameters",
        "multiValueQueryStringParameters", "pathParameters", "stageVariables", "requestContext", "body",
        "isBase64Encoded",
    }  # fmt: skip
    assert event["resource"] == "/api/v1/documents/{id}"
    assert event["path"] == "/api/v1/documents/abc"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "abc"}
    assert event["stageVariables"] is None
    context = event["requestContext"]
    assert context["requestId"] == "req-1"
    assert context["stage"] == "v1"
    assert context["resourcePath"] == "/api/v1/documents/{id}"
    assert context["httpMethod"] == "GET"
    assert context["path"] == "/v1/api/v1/documents/abc"
    assert context["identity"]["sourceIp"] == "10.1.2.3"
    assert context["identity"]["userAgent"] == "pytest"
    assert context["requestTimeEpoch"] == int(NOW.timestamp() * 1000)
    assert context["requestTime"] == "02/Jan/2025:03:04:05 +0000"


def test_absent_parts_are_null_like_api_gateway_sends_them():
    event = _event(path_parameters={}, query_string="")
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_repeated_query_keys_keep_the_last_value_and_all_values():
    event = _event(query_string="tag=a&tag=b&limit=10&empty=&q=hello%20world")
    assert event["queryStringParameters"] == {"tag": "b", "limit": "10", "empty": "", "q": "hello world"}
    assert event["multiValueQueryStringParameters"] == {
        "tag": ["a", "b"],
        "limit": ["10"],
        "empty": [""],
        "q": ["hello world"],
    }


def test_repeated_headers_keep_the_last_value_and_all_values():
    event = _event(headers=[("accept", "text/plain"), ("x-trace", "1"), ("x-trace", "2")])
    assert event["headers"] == {"accept": "text/plain", "x-trace": "2"}
    assert event["multiValueHeaders"] == {"accept": ["text/plain"], "x-trace": ["1", "2"]}


def test_text_body_is_passed_as_is():
    event = _event(method="POST", body='{"name": "é"}'.encode())
    assert event["body"] == '{"name": "é"}'
    assert event["isBase64Encoded"] is False


def test_binary_media_type_body_is_base64():
    raw = b"%PDF-1.7 \x00\x01"
    event = _event(
        method="POST",
        body=raw,
        headers=[("content-type", "application/pdf")],
        binary_media_types=["application~1pdf"],
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_non_utf8_body_is_base64_rather_than_mangled():
    raw = bytes(range(256))
    event = _event(method="POST", body=raw, headers=[("content-type", "application/octet-stream")])
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


# ---------------------------------------------------------------------------------------- the response


def _headers(response):
    return dict(response.headers)


def test_response_status_headers_body():
    response = translate_proxy_response(
        {"statusCode": 201, "headers": {"Content-Type": "application/json", "X-One": "1"}, "body": '{"a":1}'}
    )
    assert response.status == 201
    assert _headers(response) == {"content-type": "application/json", "x-one": "1"}
    assert response.body == b'{"a":1}'


def test_multi_value_headers_are_merged_and_win():
    response = translate_proxy_response(
        {
            "statusCode": 200,
            "headers": {"Set-Cookie": "ignored=1", "X-Single": "s"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "",
        }
    )
    assert [v for k, v in response.headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert ("x-single", "s") in response.headers


def test_content_type_defaults_to_json_and_missing_body_is_empty():
    response = translate_proxy_response({"statusCode": 204})
    assert response.body == b""
    assert ("content-type", "application/json") in response.headers


def test_base64_response_body_is_decoded():
    raw = b"\x89PNG\r\n\x1a\n"
    response = translate_proxy_response(
        {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(raw).decode(),
            "isBase64Encoded": True,
        }
    )
    assert response.body == raw


@pytest.mark.parametrize(
    "result",
    [
        None,
        "text",
        {},
        {"statusCode": "abc"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": {"X": ["list"]}},
        {"statusCode": 200, "multiValueHeaders": {"X": "not a list"}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
    ],
)
def test_malformed_responses_are_rejected(result):
    with pytest.raises(MalformedProxyResponse):
        translate_proxy_response(result)


# ----------------------------------------------------------------------------------------- the context


def test_lambda_context_is_accepted_by_powertools_logger():
    from aws_lambda_powertools import Logger

    logger = Logger(service="test-local-gateway")
    seen = {}

    @logger.inject_lambda_context
    def handler(event, context):
        seen["remaining"] = context.get_remaining_time_in_millis()
        return "ok"

    context = LambdaContext(function_name="QueryFunction", memory_limit_in_mb="1024", timeout_seconds=29)
    assert handler({}, context) == "ok"
    assert 0 < seen["remaining"] <= 29_000
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:QueryFunction"
    assert context.log_group_name == "/aws/lambda/QueryFunction"
    assert context.function_version == "$LATEST"
    assert context.aws_request_id


# ---------------------------------------------------------------------------------------------- SQS


def test_sqs_event_has_the_event_source_mapping_shape():
    messages = [
        {
            "MessageId": "m1",
            "ReceiptHandle": "r1",
            "MD5OfBody": "md5",
            "Body": '{"document_id": "d"}',
            "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
            "MessageAttributes": {"kind": {"StringValue": "upload", "DataType": "String"}},
        }
    ]
    arn = queue_arn("http://127.0.0.1:5000/123456789012/rag-local-IngestQueue", "eu-west-1")
    assert arn == "arn:aws:sqs:eu-west-1:123456789012:rag-local-IngestQueue"
    (record,) = build_sqs_event(messages, arn, "eu-west-1")["Records"]
    assert record == {
        "messageId": "m1",
        "receiptHandle": "r1",
        "body": '{"document_id": "d"}',
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "messageAttributes": {
            "kind": {
                "stringValue": "upload",
                "binaryValue": None,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfBody": "md5",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "eu-west-1",
    }


IDS = ["a", "b", "c"]


@pytest.mark.parametrize(
    ("result", "deleted"),
    [
        (None, IDS),
        ({}, IDS),
        ({"batchItemFailures": []}, IDS),
        ({"batchItemFailures": None}, IDS),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, ["a", "c"]),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "c"}]}, ["b"]),
        # Lambda fails the whole batch when the response names no valid message.
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, []),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, []),
        ({"batchItemFailures": [{"id": "a"}]}, []),
        ("garbage", []),
    ],
)
def test_partial_batch_failures(result, deleted):
    assert messages_to_delete(IDS, result, raised=False, report_batch_item_failures=True) == deleted


def test_a_raised_error_fails_the_whole_batch():
    assert messages_to_delete(IDS, None, raised=True, report_batch_item_failures=True) == []
    assert messages_to_delete(IDS, None, raised=True, report_batch_item_failures=False) == []


def test_without_report_batch_item_failures_any_return_deletes_all():
    result = {"batchItemFailures": [{"itemIdentifier": "a"}]}
    assert messages_to_delete(IDS, result, raised=False, report_batch_item_failures=False) == IDS


# ------------------------------------------------------------------------------------------ template


def test_template_routes_are_the_documented_api():
    template = load_template(REPO / "template-local.yaml")
    routes = {(r.method, r.path): r.function for r in template.routes}
    assert routes == {
        ("POST", "/api/v1/auth/register"): "AuthFunction",
        ("POST", "/api/v1/auth/login"): "AuthFunction",
        ("GET", "/api/v1/me"): "AuthFunction",
        ("POST", "/api/v1/users"): "AuthFunction",
        ("GET", "/api/v1/users"): "AuthFunction",
        ("DELETE", "/api/v1/users/{id}"): "AuthFunction",
        ("POST", "/api/v1/api-keys"): "AuthFunction",
        ("GET", "/api/v1/api-keys"): "AuthFunction",
        ("DELETE", "/api/v1/api-keys/{id}"): "AuthFunction",
        ("POST", "/api/v1/documents"): "DocumentsFunction",
        ("POST", "/api/v1/documents/uploads"): "DocumentsFunction",
        ("GET", "/api/v1/documents"): "DocumentsFunction",
        ("GET", "/api/v1/documents/{id}"): "DocumentsFunction",
        ("DELETE", "/api/v1/documents/{id}"): "DocumentsFunction",
        ("POST", "/api/v1/documents/{id}/reingest"): "DocumentsFunction",
        ("GET", "/api/v1/usage"): "DocumentsFunction",
        ("POST", "/api/v1/query/sync"): "QueryFunction",
        ("POST", "/api/v1/conversations"): "QueryFunction",
        ("GET", "/api/v1/conversations"): "QueryFunction",
        ("GET", "/api/v1/conversations/{id}"): "QueryFunction",
        ("DELETE", "/api/v1/conversations/{id}"): "QueryFunction",
        ("GET", "/api/v1/health"): "QueryFunction",
    }
    assert template.stage_name == "v1"


def test_template_functions_queue_and_event_source():
    template = load_template(REPO / "template-local.yaml")
    assert set(template.functions) == {
        "AuthFunction", "DocumentsFunction", "QueryFunction", "IngestFunction", "MigrateFunction",
        "StreamFunction", "ReaperFunction",
    }  # fmt: skip
    for spec in template.functions.values():
        # The stream function's handler is the Lambda Web Adapter's start script.
        assert spec.handler == ("run.sh" if spec.name == "StreamFunction" else "handler.lambda_handler")
        assert spec.code_uri.startswith("functions/")
    (source,) = template.functions["IngestFunction"].sqs_events
    assert source.batch_size == 1  # one message (a small document or one chunk range) per invocation
    assert source.report_batch_item_failures
    queue = template.queues[source.queue]
    assert queue.dead_letter_queue in template.queues
    assert queue.max_receive_count and queue.max_receive_count > 1
    # sam build puts a python-built layer's content under python/: ContentUri is ragcore's import root.
    assert "layers/core/python" in template.layer_import_paths
    assert template.functions["ReaperFunction"].schedules == (300,)  # EventBridge rate(5 minutes)


def test_environment_resolution_fills_local_values_and_keeps_literals():
    template = load_template(REPO / "template-local.yaml")
    overrides = {
        "DATABASE_URL": "postgresql://app@/rag",
        "JWT_SECRET": "s" * 32,
        "AWS_ENDPOINT_URL": "http://x",
    }
    env = resolve_environment(
        template,
        template.functions["DocumentsFunction"],
        overrides,
        {"IngestQueue": "http://x/1/q", "UploadBucket": "rag-local-uploadbucket"},
    )
    assert env["DATABASE_URL"] == "postgresql://app@/rag"
    assert env["QUEUE_URL"] == "http://x/1/q"
    assert env["UPLOAD_BUCKET"] == "rag-local-uploadbucket"
    assert env["DB_APP_ROLE"] == "rag_app"
    assert env["EMBEDDING_PROVIDER"] == "local"  # the parameter's default
    assert "MIGRATION_DATABASE_URL" not in env  # the owner's URL goes to the migrate function only
    migrate = resolve_environment(
        template,
        template.functions["MigrateFunction"],
        {**overrides, "MIGRATION_DATABASE_URL": "o"},
        {"IngestQueue": "q", "UploadBucket": "b"},
    )
    assert migrate["MIGRATION_DATABASE_URL"] == "o"


def test_environment_values_the_stack_cannot_evaluate_are_an_error_naming_the_key():
    template = load_template(REPO / "template-local.yaml")
    # AWS_ENDPOINT_URL is an Fn::If in the template: without a local value it must not be guessed.
    with pytest.raises(TemplateError, match="AWS_ENDPOINT_URL"):
        resolve_environment(
            template, template.functions["AuthFunction"], {}, {"IngestQueue": "q", "UploadBucket": "b"}
        )

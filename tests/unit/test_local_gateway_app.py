"""The gateway and the SQS poller end to end in process, with throwaway handlers (no network, no sleeps)."""

from __future__ import annotations

import base64
import json
import textwrap

import boto3
import pytest
from moto import mock_aws
from starlette.testclient import TestClient

from infra.local.events import MAX_PAYLOAD_BYTES, RouteTable
from infra.local.functions import LocalFunction
from infra.local.gateway import Gateway
from infra.local.sqs import SqsPoller, ensure_queues
from infra.local.template import FunctionSpec, QueueSpec, Route, SqsEventSource, Template

HANDLERS = {
    "echo": """
        import json
        from aws_lambda_powertools import Logger
        from helper import shout  # a module beside the handler, as in a Lambda asset

        logger = Logger(service="echo")

        @logger.inject_lambda_context
        def lambda_handler(event, context):
            body = {"event": event, "function": context.function_name, "shout": shout("hi"),
                    "remaining": context.get_remaining_time_in_millis()}
            return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                    "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": json.dumps(body)}
    """,
    "binary": """
        import base64
        def lambda_handler(event, context):
            return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                    "body": base64.b64encode(b"\\x00\\xffdata").decode(), "isBase64Encoded": True}
    """,
    "crash": """
        def lambda_handler(event, context):
            raise ValueError("boom")
    """,
    "malformed": """
        def lambda_handler(event, context):
            return {"statusCode": 200, "body": {"not": "a string"}}
    """,
    "broken": """
        import this_module_does_not_exist
    """,
    "ingest": """
        import json
        SEEN = []

        def lambda_handler(event, context):
            SEEN.append(event)
            failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                        if json.loads(r["body"]).get("fail")]
            return {"batchItemFailures": failures}
    """,
}


@pytest.fixture
def functions(tmp_path):
    specs = {}
    for name, source in HANDLERS.items():
        code = tmp_path / "functions" / name
        code.mkdir(parents=True)
        (code / "handler.py").write_text(textwrap.dedent(source))
        specs[name] = LocalFunction(
            FunctionSpec(
                name=name,
                code_uri=f"functions/{name}/",
                handler="handler.lambda_handler",
                timeout=10,
                memory_size=256,
                environment={},
            ),
            tmp_path,
        )
    (tmp_path / "functions" / "echo" / "helper.py").write_text("def shout(s):\n    return s.upper() + '!'\n")
    return specs


@pytest.fixture
def client(functions):
    routes = RouteTable(
        [
            Route("GET", "/api/v1/items/{id}", "echo"),
            Route("POST", "/api/v1/items", "echo"),
            Route("GET", "/api/v1/binary", "binary"),
            Route("GET", "/api/v1/crash", "crash"),
            Route("GET", "/api/v1/malformed", "malformed"),
            Route("GET", "/api/v1/broken", "broken"),
        ]
    )

    async def stream_app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"streamed"})

    gateway = Gateway(routes, functions, stage="v1", asgi_routes={"/api/v1/query": stream_app})
    with TestClient(gateway, base_url="http://127.0.0.1:8080") as test_client:
        yield test_client
    gateway.close()


def test_request_becomes_a_proxy_event_and_the_response_comes_back(client):
    response = client.get("/api/v1/items/abc?tag=a&tag=b", headers={"Authorization": "Bearer x"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["x-amzn-requestid"]
    payload = response.json()
    event = payload["event"]
    assert payload["function"] == "echo"
    assert payload["shout"] == "HI!"
    assert 0 < payload["remaining"] <= 10_000
    assert event["resource"] == "/api/v1/items/{id}"
    assert event["path"] == "/api/v1/items/abc"
    assert event["pathParameters"] == {"id": "abc"}
    assert event["queryStringParameters"] == {"tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}
    assert event["headers"]["authorization"] == "Bearer x"
    assert event["requestContext"]["requestId"] == response.headers["x-amzn-requestid"]
    assert event["requestContext"]["stage"] == "v1"
    assert event["body"] is None


def test_post_body_reaches_the_function(client):
    response = client.post("/api/v1/items", json={"name": "doc"})
    event = response.json()["event"]
    assert event["httpMethod"] == "POST"
    assert json.loads(event["body"]) == {"name": "doc"}
    assert event["isBase64Encoded"] is False


def test_base64_response_is_decoded(client):
    response = client.get("/api/v1/binary")
    assert response.status_code == 200
    assert response.content == b"\x00\xffdata"


def test_unknown_route_is_404_with_the_error_body(client):
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_method_is_405_with_the_error_body(client):
    response = client.delete("/api/v1/items")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("encoded, value", [("%0D", "\r"), ("%0A", "\n"), ("%09x", "\tx")])
def test_a_path_parameter_of_control_characters_reaches_the_function_as_sent(client, encoded, value):
    # Found by schemathesis: /users/%0D answered 405 as if it were /users (urllib drops CR, LF and tab).
    response = client.get(f"/api/v1/items/{encoded}")
    assert response.status_code == 200, response.text
    assert response.json()["event"]["pathParameters"] == {"id": value}


def test_payload_over_10_mb_is_413(client):
    response = client.post("/api/v1/items", content=b"x" * (MAX_PAYLOAD_BYTES + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("path", ["/api/v1/crash", "/api/v1/malformed", "/api/v1/broken"])
def test_function_failures_are_502_with_the_error_body(client, path):
    response = client.get(path)
    assert response.status_code == 502
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["message"]


def test_asgi_route_is_served_without_a_proxy_event(client):
    response = client.post("/api/v1/query", json={"question": "q"})
    assert response.status_code == 200
    assert response.text == "streamed"


# ------------------------------------------------------------------------------------------- poller


@pytest.fixture
def sqs():
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _template(tmp_path):
    queues = {
        "Dlq": QueueSpec("Dlq", {}),
        "Queue": QueueSpec(
            "Queue",
            {
                "VisibilityTimeout": 720,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
                    "maxReceiveCount": 2,
                },
            },
        ),
    }
    return Template(tmp_path / "t.yaml", {}, {}, (), queues, ())


def test_queues_are_created_with_redrive_and_a_short_visibility_timeout(sqs, tmp_path):
    urls = ensure_queues(sqs, _template(tmp_path), name_prefix="rag-test", visibility_timeout=0)
    attributes = sqs.get_queue_attributes(QueueUrl=urls["Queue"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "0"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":rag-test-Dlq")
    assert int(redrive["maxReceiveCount"]) == 2
    # A second run (restart) finds the queues and keeps their URLs.
    assert ensure_queues(sqs, _template(tmp_path), name_prefix="rag-test", visibility_timeout=0) == urls


def test_poller_deletes_successes_and_leaves_failures_to_the_dlq(sqs, tmp_path, functions):
    urls = ensure_queues(sqs, _template(tmp_path), name_prefix="rag-test", visibility_timeout=0)
    for body in ({"n": 1}, {"n": 2, "fail": True}, {"n": 3}):
        sqs.send_message(
            QueueUrl=urls["Queue"],
            MessageBody=json.dumps(body),
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": "test"},
                "raw": {"DataType": "Binary", "BinaryValue": b"\x01"},
            },
        )
    ingest = functions["ingest"]
    poller = SqsPoller(sqs, urls["Queue"], ingest, SqsEventSource("Queue", 10, True), region="us-east-1")

    assert poller.poll_once(wait_seconds=0) == 3
    (event,) = _handler_module(ingest).SEEN
    records = event["Records"]
    assert len(records) == 3
    record = records[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:rag-test-Queue"
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "test"
    assert base64.b64decode(record["messageAttributes"]["raw"]["binaryValue"]) == b"\x01"
    assert record["md5OfBody"]

    # Only the failed message comes back; after maxReceiveCount receives SQS moves it to the DLQ.
    assert poller.poll_once(wait_seconds=0) == 1
    assert [json.loads(r["body"]) for r in _handler_module(ingest).SEEN[1]["Records"]] == [
        {"n": 2, "fail": True}
    ]
    assert poller.poll_once(wait_seconds=0) == 0
    assert _count(sqs, urls["Queue"]) == 0
    dead = sqs.receive_message(QueueUrl=urls["Dlq"], MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in dead] == [{"n": 2, "fail": True}]


def test_a_raising_handler_deletes_nothing(sqs, tmp_path, functions):
    urls = ensure_queues(sqs, _template(tmp_path), name_prefix="rag-test", visibility_timeout=0)
    sqs.send_message(QueueUrl=urls["Queue"], MessageBody="{}")
    poller = SqsPoller(
        sqs, urls["Queue"], functions["crash"], SqsEventSource("Queue", 10, True), region="us-east-1"
    )
    assert poller.poll_once(wait_seconds=0) == 1
    assert _count(sqs, urls["Queue"]) == 1


def _handler_module(function):
    import sys

    return sys.modules[function.idle_handlers[-1].__module__]


def _count(sqs, url):
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_concurrent_requests_get_their_own_environments(tmp_path):
    import threading

    from infra.local.functions import LocalFunction
    from infra.local.template import FunctionSpec

    code = tmp_path / "slow"
    code.mkdir()
    (code / "handler.py").write_text(
        "def lambda_handler(event, context):\n"
        "    event['barrier'].wait(timeout=10)\n"
        "    return id(lambda_handler)\n"
    )
    spec = FunctionSpec(
        name="slow",
        code_uri="slow",
        handler="handler.lambda_handler",
        timeout=10,
        memory_size=128,
        environment={},
    )
    function = LocalFunction(spec, tmp_path, max_environments=3)
    barrier = threading.Barrier(3)  # passes only if three invocations run at the same time
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(function.invoke({"barrier": barrier})))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert len(results) == 3 and len(set(results)) == 3  # three environments, each its own module
    assert len(function.idle_handlers) == 3
    function.invoke({"barrier": threading.Barrier(1)})
    assert len(function.idle_handlers) == 3  # warm ones are reused, no fourth cold start


# --- Lambda's and API Gateway's limits ----------------------------------------------------------------


def _gateway_for(tmp_path, handlers: dict[str, str], *, max_environments=4, **options) -> Gateway:
    functions = {}
    routes = []
    for name, source in handlers.items():
        code = tmp_path / "functions" / name
        code.mkdir(parents=True)
        (code / "handler.py").write_text(textwrap.dedent(source))
        spec = FunctionSpec(
            name=name,
            code_uri=f"functions/{name}/",
            handler="handler.lambda_handler",
            timeout=10,
            memory_size=256,
            environment={},
        )
        functions[name] = LocalFunction(spec, tmp_path, max_environments=max_environments)
        routes.append(Route("POST", f"/api/v1/{name}", name))
    return Gateway(RouteTable(routes), functions, stage="v1", **options)


def test_headers_over_api_gateways_limit_are_431_with_the_error_body(client):
    response = client.get("/api/v1/items/1", headers={"Authorization": "Bearer " + "x" * 1_000_000})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_header_fields_too_large"
    assert client.get("/api/v1/items/1", headers={"Authorization": "Bearer " + "x" * 8000}).status_code == 200


def test_an_event_over_lambdas_6_mb_is_413_although_the_body_is_under_10_mb(tmp_path):
    from infra.local.gateway import LAMBDA_PAYLOAD_BYTES

    gateway = _gateway_for(
        tmp_path, {"size": "def lambda_handler(event, context):\n    return {'statusCode': 204}\n"}
    )
    with TestClient(gateway) as client:
        # 4 MB of quotes: each becomes \\" in the event's JSON, so the event is over 8 MB.
        escaped = client.post(
            "/api/v1/size", content=b'"' * 4_000_000, headers={"Content-Type": "text/plain"}
        )
        assert escaped.status_code == 413
        assert escaped.json()["error"]["code"] == "payload_too_large"
        assert str(LAMBDA_PAYLOAD_BYTES) in escaped.json()["error"]["message"]
        plain = client.post("/api/v1/size", content=b"a" * 6_000_000, headers={"Content-Type": "text/plain"})
        assert plain.status_code == 204  # the event is just over the body's size: it fits
    gateway.close()


def test_a_response_over_lambdas_6_mb_is_502_with_the_error_body(tmp_path):
    gateway = _gateway_for(
        tmp_path,
        {
            "big": """
                def lambda_handler(event, context):
                    return {"statusCode": 200, "body": "a" * int(event["body"])}
            """
        },
    )
    with TestClient(gateway) as client:
        too_big = client.post("/api/v1/big", content=b"6300000")
        assert too_big.status_code == 502
        assert too_big.json()["error"]["code"] == "internal_error"
        assert "6291456" in too_big.json()["error"]["message"]
        assert len(client.post("/api/v1/big", content=b"6000000").content) == 6_000_000
    gateway.close()


def test_a_request_finding_every_environment_busy_is_throttled_429_and_nothing_runs(tmp_path):
    import asyncio
    import sys
    import threading

    import httpx

    gate = type(sys)("_gateway_test_gate")
    gate.entered, gate.release, gate.calls = threading.Event(), threading.Event(), []
    sys.modules[gate.__name__] = gate
    gateway = _gateway_for(
        tmp_path,
        {
            "hold": """
                import _gateway_test_gate as gate

                def lambda_handler(event, context):
                    gate.calls.append(event["body"])
                    gate.entered.set()
                    gate.release.wait(10)
                    return {"statusCode": 200, "body": "done"}
            """
        },
        max_environments=1,
        environment_wait_seconds=0,
    )

    async def scenario():
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
            first = asyncio.create_task(client.post("/api/v1/hold", content=b"first"))
            await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 10)
            second = await client.post("/api/v1/hold", content=b"second")
            gate.release.set()
            return await first, second

    try:
        first, second = asyncio.run(scenario())
    finally:
        sys.modules.pop(gate.__name__, None)
        gateway.close()
    assert first.status_code == 200 and first.text == "done"
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    assert second.json()["error"]["code"] == "too_many_requests"
    assert gate.calls == ["first"]  # the throttled request never reached the handler


def test_schedule_rates_of_the_template_are_read_in_seconds():
    from infra.local.template import TemplateError, parse_rate

    assert parse_rate("rate(5 minutes)") == 300
    assert parse_rate("rate(1 hour)") == 3600
    for bad in ("cron(0 * * * ? *)", "rate(0 minutes)", "rate(five minutes)"):
        with pytest.raises(TemplateError):
            parse_rate(bad)

"""The local gateway's integration timeout counts from the moment the handler starts: a request that waited
for a free execution environment and then completed is answered with its result, never a 504."""

import asyncio
import sys
import textwrap
import threading

import httpx

from infra.local.events import RouteTable
from infra.local.functions import LocalFunction
from infra.local.gateway import Gateway
from infra.local.template import FunctionSpec, Route

HANDLER = """
    import _gateway_queue_gate as gate

    def lambda_handler(event, context):
        if event["body"] == "first":
            gate.entered.set()
            gate.release.wait(10)
        return {"statusCode": 201, "body": event["body"]}
"""


def test_time_queued_for_an_environment_is_not_counted_against_the_timeout(tmp_path):
    gate = type(sys)("_gateway_queue_gate")
    gate.entered, gate.release = threading.Event(), threading.Event()
    sys.modules[gate.__name__] = gate
    code = tmp_path / "functions" / "slow"
    code.mkdir(parents=True)
    (code / "handler.py").write_text(textwrap.dedent(HANDLER))
    spec = FunctionSpec("slow", "functions/slow/", "handler.lambda_handler", 1, 128, {})
    function = LocalFunction(spec, tmp_path, max_environments=1)
    gateway = Gateway(RouteTable([Route("POST", "/api/v1/slow", "slow")]), {"slow": function})

    async def scenario():
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://local", timeout=30) as client:
            first = asyncio.create_task(client.post("/api/v1/slow", content=b"first"))
            await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 10)
            second = asyncio.create_task(client.post("/api/v1/slow", content=b"second"))
            # The second request waits longer than the function's 1 s timeout for the only environment;
            # its handler then takes no time at all.
            await asyncio.sleep(1.5)
            gate.release.set()
            return await first, await second

    try:
        first, second = asyncio.run(scenario())
    finally:
        sys.modules.pop(gate.__name__, None)
        gateway.close()
    assert (first.status_code, second.status_code) == (504, 201)
    assert second.text == "second"

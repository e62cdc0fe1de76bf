"""What EventBridge does for the template's Schedule events: invoke the function periodically."""

from __future__ import annotations

import contextlib
import threading
import uuid
from datetime import UTC, datetime

from .events import ACCOUNT_ID
from .functions import FunctionError, LocalFunction


def scheduled_event(region: str, now: datetime | None = None) -> dict:
    """The event EventBridge sends a function for a scheduled rule."""
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/local-schedule"],
        "detail": {},
    }


class Scheduler:
    """Invokes one function every ``period_seconds`` on a thread of its own until stopped."""

    def __init__(self, function: LocalFunction, period_seconds: float, *, region: str):
        self.function = function
        self.period_seconds = period_seconds
        self.region = region
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"schedule-{self.function.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """No further runs; the one in progress, if any, finishes."""
        self._stop.set()

    def stop(self, timeout: float = 30) -> bool:
        """Stops after the run in progress; False if it is still running after ``timeout``."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.period_seconds):
            # A failure is logged by the function wrapper; the next period runs again, as EventBridge would.
            with contextlib.suppress(FunctionError):
                self.function.invoke(scheduled_event(self.region))

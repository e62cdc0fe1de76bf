"""Answer generation behind one streaming interface.

A generator turns a question and the retrieved sources into a stream of events: text deltas, then one
usage report. Answers cite sources as [n], n being the 1-based position in ``sources``.

Providers: ``extractive`` (offline, the default: the retrieved sentences that best answer the question),
``openai`` (chat completions with ``stream=true`` through the official SDK, any compatible endpoint) and
``bedrock`` (bedrock-runtime ConverseStream). The model-backed providers share one failure policy:

* before the first token, a throttled (429), failing (5xx), timed-out or unreachable provider is retried
  up to ``generation_max_retries`` times, with exponential backoff and full jitter (Retry-After honoured);
* any failure that is not retried, or that happens after the first token (text already sent cannot be
  taken back), raises :class:`ragcore.errors.ServiceUnavailable` with a ``generation_*`` code: the sync
  endpoint answers 503 with the error body, the stream ends with ``event: error``.

Closing a generator's stream (the client went away) closes the provider's HTTP response with it.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .condense import Condensed, CondensePrompt, build_condense_prompt, clean_condensed
from .embeddings import Embedder, backoff_delay
from .embeddings.bedrock import BEDROCK_RETRYABLE_CODES
from .errors import ServiceUnavailable
from .observability import logger, provider_failure, tracer
from .prompting import NO_ANSWER, Prompt, build_prompt
from .retrieval import Source

if TYPE_CHECKING:
    from .condense import Turn
    from .config import Settings

__all__ = [
    "NO_ANSWER",
    "BedrockGenerator",
    "ExtractiveGenerator",
    "GenerationEvent",
    "Generator",
    "OpenAIGenerator",
    "ProviderFailure",
    "TextDelta",
    "UsageReport",
    "get_generator",
]

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*[-*\u2022]\s)")
_TERM = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not now
    of off on once only or other our ours out over own same she should so some such than that the their
    theirs them then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class UsageReport:
    usage: dict[str, Any] = field(default_factory=dict)


GenerationEvent = TextDelta | UsageReport


class Generator(Protocol):
    name: str

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[GenerationEvent]: ...


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a light rule-based splitter: terminal punctuation, blank lines, bullets)."""
    parts = (" ".join(p.split()) for p in _SENTENCE_BREAK.split(text))
    return [p for p in parts if p]


def content_terms(text: str) -> set[str]:
    """Lower-cased terms of ``text`` without stop words, lightly stemmed (plural and -ing/-ed endings)."""
    terms = set()
    for term in _TERM.findall(text.lower()):
        if term in _STOPWORDS:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if len(term) > len(suffix) + 3 and term.endswith(suffix):
                term = term[: -len(suffix)]
                break
        terms.add(term)
    return terms


def word_groups(text: str, words_per_group: int = 3) -> Iterator[str]:
    """``text`` in pieces of a few words, each keeping its trailing space, for streaming."""
    words = text.split(" ")
    for i in range(0, len(words), words_per_group):
        piece = " ".join(words[i : i + words_per_group])
        yield piece + (" " if i + words_per_group < len(words) else "")


class ExtractiveGenerator:
    """The offline generator: answers with the retrieved sentences that best match the question.

    Each sentence is scored by embedding similarity to the question and by the share of the question's
    content terms it contains; the best few are given in order of relevance, each with its citation.
    Only the most promising sentences are embedded (by term overlap and by their chunk's similarity), so
    the cost stays flat however long the chunks are. A further sentence joins the answer only if it
    scores close to the best one.
    """

    name = "extractive"

    def __init__(
        self,
        embedder: Embedder,
        max_sentences: int = 3,
        max_words: int = 120,
        max_candidates: int = 16,
        min_relative_score: float = 0.8,
    ):
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.max_words = max_words
        self.max_candidates = max_candidates
        self.min_relative_score = min_relative_score

    def select(self, question: str, sources: Sequence[Source]) -> list[tuple[str, int]]:
        """The chosen (sentence, citation number) pairs, best first."""
        question_terms = content_terms(question)
        seen: set[str] = set()
        candidates: list[tuple[str, int, float]] = []  # sentence, citation number, term overlap
        for number, source in enumerate(sources, start=1):
            for sentence in split_sentences(source.content):
                key = sentence.lower()
                if len(sentence.split()) < 3 or key in seen:  # overlapping chunks repeat sentences
                    continue
                seen.add(key)
                overlap = (
                    len(question_terms & content_terms(sentence)) / len(question_terms)
                    if question_terms
                    else 0.0
                )
                candidates.append((sentence, number, overlap))
        if not candidates:
            return []
        if len(candidates) > self.max_candidates:
            promise = [overlap + 0.5 * sources[number - 1].score for _, number, overlap in candidates]
            keep = sorted(np.argsort(promise, kind="stable")[::-1][: self.max_candidates])
            candidates = [candidates[i] for i in keep]
        vectors = self.embedder.embed([question] + [sentence for sentence, _, _ in candidates])
        similarity = vectors[1:] @ vectors[0]
        score = 0.75 * similarity + 0.25 * np.array([overlap for _, _, overlap in candidates])
        chosen: list[tuple[str, int]] = []
        words = 0
        best = None
        for i in np.argsort(-score, kind="stable"):
            sentence, number, _ = candidates[i]
            best = score[i] if best is None else best
            if chosen and (
                score[i] < self.min_relative_score * best or words + len(sentence.split()) > self.max_words
            ):
                break
            chosen.append((sentence, number))
            words += len(sentence.split())
            if len(chosen) == self.max_sentences:
                break
        return chosen

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[GenerationEvent]:
        """Stream the composed answer in word groups, then the usage."""
        chosen = self.select(question, sources)
        answer = " ".join(f"{s} [{n}]" for s, n in chosen) if chosen else NO_ANSWER
        yield from (TextDelta(piece) for piece in word_groups(answer))
        yield UsageReport(
            {
                "provider": self.name,
                "input_tokens": sum(
                    self.embedder.count_word_pieces(
                        (question + " " + " ".join(s.content for s in sources)).split()
                    )
                ),
                "output_tokens": sum(self.embedder.count_word_pieces(answer.split())),
            }
        )


# --------------------------------------------------------------------------- model-backed providers


class ProviderFailure(Exception):
    """A provider call failed. ``retryable``: trying again (before the first token) may help.

    ``code`` becomes the error code the client sees; ``retry_after`` (seconds) is the provider's own
    Retry-After, a lower bound for the next attempt.
    """

    def __init__(self, message: str, *, code: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


def _status_failure(status: int | None, detail: str, retry_after: float | None = None) -> ProviderFailure:
    if status == 429:
        return ProviderFailure(
            f"the generation provider is rate limiting ({detail})",
            code="generation_rate_limited",
            retryable=True,
            retry_after=retry_after,
        )
    if status is not None and (status >= 500 or status == 408):
        return ProviderFailure(
            f"the generation provider failed ({status}: {detail})",
            code="generation_unavailable",
            retryable=True,
            retry_after=retry_after,
        )
    return ProviderFailure(
        f"the generation provider refused the request ({status}: {detail})",
        code="generation_failed",
        retryable=False,
    )


_TIMED_OUT = "the generation provider did not answer in time"
_UNREACHABLE = "the generation provider is unreachable"


class _ModelGenerator(ABC):
    """The retry and error policy shared by the model-backed providers (see the module docstring).

    Subclasses implement ``_attempt`` (one provider call, streamed) and ``_classify`` (an exception of
    their SDK as a :class:`ProviderFailure`). ``sleep`` and ``rng`` are injectable so tests never wait.
    """

    name = "model"

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ):
        self.model = settings.generation_model
        self.max_tokens = settings.generation_max_tokens
        self.temperature = settings.generation_temperature
        self.max_retries = settings.generation_max_retries
        self.retry_base = settings.generation_retry_base_seconds
        self.retry_cap = settings.generation_retry_max_seconds
        self.condense_max_tokens = settings.conversation_condense_max_tokens
        self.sleep = sleep
        self.rng = rng

    @abstractmethod
    def _attempt(self, prompt: Prompt) -> Iterator[GenerationEvent]:
        """One provider call, streamed as generation events."""

    @abstractmethod
    def _classify(self, error: Exception) -> ProviderFailure:
        """The provider SDK's exception as a retryable or final failure."""

    @abstractmethod
    def _condense_attempt(self, prompt: CondensePrompt) -> Condensed:
        """One provider call (not streamed) returning the standalone question."""

    def condense(self, history: Sequence[Turn], follow_up: str) -> Condensed:
        """``follow_up`` rewritten by the model as a standalone question, given the (bounded) history.

        Same retry policy as an answer before its first token; a final failure raises
        :class:`ServiceUnavailable` before anything is retrieved or sent. An empty reply gives the
        follow-up unchanged.
        """
        prompt = build_condense_prompt(history, follow_up)
        attempt = 0
        while True:
            try:
                result = self._condense_attempt(prompt)
                question = clean_condensed(result.question)
                return Condensed(question or follow_up.strip(), result.usage)
            except Exception as error:
                failure = error if isinstance(error, ProviderFailure) else self._classify(error)
                self._count_failure(failure)
                if not failure.retryable or attempt >= self.max_retries:
                    logger.warning(
                        "condensation failed",
                        extra={
                            "provider": self.name,
                            "model": self.model,
                            "code": failure.code,
                            "attempts": attempt + 1,
                            "detail": failure.message,
                        },
                    )
                    message = failure.message
                    if failure.retryable and attempt:
                        message = f"{message}, after {attempt + 1} attempts"
                    raise ServiceUnavailable(message, code=failure.code) from error
                self.sleep(
                    backoff_delay(
                        attempt,
                        base=self.retry_base,
                        cap=self.retry_cap,
                        rng=self.rng,
                        retry_after=failure.retry_after,
                    )
                )
                attempt += 1

    def _count_failure(self, failure: ProviderFailure) -> None:
        provider_failure("generation", self.name, throttled=failure.code == "generation_rate_limited")

    def _usage(self, input_tokens: int | None, output_tokens: int | None, stop_reason: str | None) -> dict:
        return {
            "provider": self.name,
            "model": self.model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "stop_reason": stop_reason,
        }

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[GenerationEvent]:
        if not sources:
            # Nothing to answer from: the model is not asked (it could only guess).
            yield from (TextDelta(piece) for piece in word_groups(NO_ANSWER))
            yield UsageReport(self._usage(0, 0, "no_sources"))
            return
        prompt = build_prompt(question, sources)
        attempt = 0
        while True:
            started = False
            try:
                with closing(self._attempt(prompt)) as events:
                    for event in events:
                        started = started or isinstance(event, TextDelta)
                        yield event
                return
            except Exception as error:
                failure = error if isinstance(error, ProviderFailure) else self._classify(error)
                self._count_failure(failure)
                if started or not failure.retryable or attempt >= self.max_retries:
                    logger.warning(
                        "generation failed",
                        extra={
                            "provider": self.name,
                            "model": self.model,
                            "code": failure.code,
                            "attempts": attempt + 1,
                            "after_first_token": started,
                            "detail": failure.message,
                        },
                    )
                    if started:
                        message = f"{failure.message}; the answer is incomplete"
                    elif failure.retryable and attempt:
                        message = f"{failure.message}, after {attempt + 1} attempts"
                    else:
                        message = failure.message
                    raise ServiceUnavailable(message, code=failure.code) from error
                delay = backoff_delay(
                    attempt,
                    base=self.retry_base,
                    cap=self.retry_cap,
                    rng=self.rng,
                    retry_after=failure.retry_after,
                )
                logger.info(
                    "generation retry",
                    extra={
                        "provider": self.name,
                        "code": failure.code,
                        "attempt": attempt + 1,
                        "delay": delay,
                    },
                )
                self.sleep(delay)
                attempt += 1


class OpenAIGenerator(_ModelGenerator):
    """Chat completions with ``stream=true`` through the official ``openai`` SDK.

    Any OpenAI-compatible endpoint works (``openai_base_url``: OpenAI, Azure OpenAI's v1 API, vLLM,
    Ollama, LiteLLM). The SDK's own retries are off so that one policy applies (``_ModelGenerator``);
    the read timeout bounds the wait for each piece of the stream. Usage is requested with
    ``stream_options.include_usage`` and reported as ``None`` by servers that do not send it.
    """

    name = "openai"

    def __init__(self, settings: Settings, *, client: Any = None, **kwargs: Any):
        super().__init__(settings, **kwargs)
        self.client = client or _openai_client(settings)

    # Traced without the response: a prompt or an answer never goes to X-Ray.
    @tracer.capture_method(capture_response=False)
    def _attempt(self, prompt: Prompt) -> Iterator[GenerationEvent]:
        options: dict[str, Any] = {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        stream = self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=self.max_tokens,
            **options,
        )
        with closing(stream):
            finish_reason = None
            usage = None
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices or ():
                    if choice.index != 0:
                        continue
                    text = choice.delta.content if choice.delta is not None else None
                    if text:
                        yield TextDelta(text)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
            if finish_reason is None:
                # The connection ended without [DONE] or a finish reason: the answer is cut short.
                raise ProviderFailure(
                    "the generation provider's stream ended before the answer was complete",
                    code="generation_unavailable",
                    retryable=True,
                )
        yield UsageReport(
            self._usage(
                getattr(usage, "prompt_tokens", None),
                getattr(usage, "completion_tokens", None),
                finish_reason,
            )
        )

    # Traced without the response: a prompt or an answer never goes to X-Ray.
    @tracer.capture_method(capture_response=False)
    def _condense_attempt(self, prompt: CondensePrompt) -> Condensed:
        options: dict[str, Any] = {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        response = self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            max_tokens=self.condense_max_tokens,
            **options,
        )
        choices = response.choices or []
        text = (choices[0].message.content or "") if choices and choices[0].message is not None else ""
        usage = response.usage
        return Condensed(
            text,
            {
                "input_tokens": getattr(usage, "prompt_tokens", None),
                "output_tokens": getattr(usage, "completion_tokens", None),
            },
        )

    def _classify(self, error: Exception) -> ProviderFailure:
        import openai

        if isinstance(error, openai.APITimeoutError):
            return ProviderFailure(_TIMED_OUT, code="generation_timeout", retryable=True)
        if isinstance(error, openai.APIConnectionError):
            return ProviderFailure(_UNREACHABLE, code="generation_unavailable", retryable=True)
        if isinstance(error, openai.APIStatusError):
            return _status_failure(
                error.status_code, _short(error.message), _retry_after(error.response.headers)
            )
        if isinstance(error, openai.APIError):  # an error event inside the stream
            return ProviderFailure(
                f"the generation provider reported an error ({_short(error.message)})",
                code="generation_failed",
                retryable=True,
            )
        return ProviderFailure(
            f"the generation provider failed ({type(error).__name__})",
            code="generation_failed",
            retryable=False,
        )


class BedrockGenerator(_ModelGenerator):
    """Amazon Bedrock ConverseStream (``bedrock-runtime``), model id ``generation_model``.

    The prompt's system instruction goes in ``system``, the fenced sources and question in one user
    message. botocore's own retries are off so that one policy applies (``_ModelGenerator``); errors
    inside the event stream (throttling, model stream errors) arrive as ``EventStreamError``.
    """

    name = "bedrock"

    # The invoke errors every Bedrock call may return, plus those only the ConverseStream event stream
    # sends (its exception shapes arrive lower-camel-cased inside the stream).
    _RETRYABLE_CODES = BEDROCK_RETRYABLE_CODES | {
        "ModelStreamErrorException",
        "throttlingException",
        "serviceUnavailableException",
        "internalServerException",
        "modelStreamErrorException",
    }

    def __init__(self, settings: Settings, *, client: Any = None, **kwargs: Any):
        super().__init__(settings, **kwargs)
        self.client = client or _bedrock_client(settings)

    # Traced without the response: a prompt or an answer never goes to X-Ray.
    @tracer.capture_method(capture_response=False)
    def _attempt(self, prompt: Prompt) -> Iterator[GenerationEvent]:
        inference: dict[str, Any] = {"maxTokens": self.max_tokens}
        if self.temperature is not None:
            inference["temperature"] = self.temperature
        response = self.client.converse_stream(
            modelId=self.model,
            system=[{"text": prompt.system}],
            messages=[{"role": "user", "content": [{"text": prompt.user}]}],
            inferenceConfig=inference,
        )
        stream = response["stream"]
        with closing(stream):
            stop_reason = None
            usage: dict[str, Any] = {}
            for event in stream:
                if "contentBlockDelta" in event:
                    text = event["contentBlockDelta"].get("delta", {}).get("text")
                    if text:
                        yield TextDelta(text)
                elif "messageStop" in event:
                    stop_reason = event["messageStop"].get("stopReason")
                elif "metadata" in event:
                    usage = event["metadata"].get("usage") or {}
            if stop_reason is None:
                raise ProviderFailure(
                    "the generation provider's stream ended before the answer was complete",
                    code="generation_unavailable",
                    retryable=True,
                )
        yield UsageReport(self._usage(usage.get("inputTokens"), usage.get("outputTokens"), stop_reason))

    # Traced without the response: a prompt or an answer never goes to X-Ray.
    @tracer.capture_method(capture_response=False)
    def _condense_attempt(self, prompt: CondensePrompt) -> Condensed:
        inference: dict[str, Any] = {"maxTokens": self.condense_max_tokens}
        if self.temperature is not None:
            inference["temperature"] = self.temperature
        response = self.client.converse(
            modelId=self.model,
            system=[{"text": prompt.system}],
            messages=[{"role": "user", "content": [{"text": prompt.user}]}],
            inferenceConfig=inference,
        )
        blocks = ((response.get("output") or {}).get("message") or {}).get("content") or []
        text = "".join(block.get("text", "") for block in blocks)
        usage = response.get("usage") or {}
        return Condensed(
            text, {"input_tokens": usage.get("inputTokens"), "output_tokens": usage.get("outputTokens")}
        )

    def _classify(self, error: Exception) -> ProviderFailure:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        if isinstance(error, ReadTimeoutError | ConnectTimeoutError):
            return ProviderFailure(_TIMED_OUT, code="generation_timeout", retryable=True)
        if isinstance(error, EndpointConnectionError | BotoConnectionError):
            return ProviderFailure(_UNREACHABLE, code="generation_unavailable", retryable=True)
        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            message = error.response.get("Error", {}).get("Message", "") or code
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code.lower().startswith("throttling") or code == "TooManyRequestsException":
                status = 429
            elif code in self._RETRYABLE_CODES and (status is None or status < 500):
                status = 503
            return _status_failure(status, _short(f"{code}: {message}"))
        return ProviderFailure(
            f"the generation provider failed ({type(error).__name__})",
            code="generation_failed",
            retryable=False,
        )


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (an HTTP date is left to the backoff)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


# ---------------------------------------------------------------------------------- clients, factory

_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


def _cached_client(key: tuple, create: Callable[[], Any]) -> Any:
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = create()
    return client


def _openai_client(settings: Settings) -> Any:
    """One SDK client per process and configuration: its connection pool outlives a request."""
    secret = settings.openai_api_key.get_secret_value()
    key = (
        "openai",
        settings.openai_base_url,
        hashlib.sha256(secret.encode()).hexdigest(),
        settings.generation_connect_timeout_seconds,
        settings.generation_read_timeout_seconds,
    )

    def create() -> Any:
        import openai

        return openai.OpenAI(
            api_key=secret,
            base_url=settings.openai_base_url,
            timeout=openai.Timeout(
                settings.generation_read_timeout_seconds, connect=settings.generation_connect_timeout_seconds
            ),
            max_retries=0,
        )

    return _cached_client(key, create)


def _bedrock_client(settings: Settings) -> Any:
    key = (
        "bedrock",
        settings.aws_region,
        settings.aws_endpoint_url,
        settings.generation_connect_timeout_seconds,
        settings.generation_read_timeout_seconds,
    )

    def create() -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "bedrock-runtime",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=settings.generation_connect_timeout_seconds,
                read_timeout=settings.generation_read_timeout_seconds,
            ),
        )

    return _cached_client(key, create)


def reset_generation_clients() -> None:
    """Forget the cached provider clients (tests)."""
    with _clients_lock:
        _clients.clear()


def get_generator(
    embedder: Embedder, provider: str | None = None, settings: Settings | None = None
) -> Generator:
    """The configured generator (``provider`` defaults to ``settings.generation_provider``)."""
    if settings is None:
        from .config import get_settings

        settings = get_settings()
    provider = provider or settings.generation_provider
    if provider == "extractive":
        return ExtractiveGenerator(embedder)
    if provider == "openai":
        return OpenAIGenerator(settings)
    if provider == "bedrock":
        return BedrockGenerator(settings)
    raise ValueError(f"unknown generation provider {provider!r}")

"""The ``openai`` provider: POST {base_url}/embeddings of any OpenAI-compatible endpoint (stdlib HTTP)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ragcore.embeddings._approx import estimate_word_pieces, normalise_rows
from ragcore.embeddings.errors import EmbeddingProviderError

if TYPE_CHECKING:
    from ragcore.config import Settings

# Input limits (tokens) of known models, with a margin; other models get a conservative 512.
_KNOWN_LIMITS = {
    "text-embedding-3-small": 8000,
    "text-embedding-3-large": 8000,
    "text-embedding-ada-002": 8000,
    "sentence-transformers/all-MiniLM-L6-v2": 254,
}
DEFAULT_MAX_INPUT_TOKENS = 512


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: let the backoff decide
        return None


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint.

    ``max_input_tokens`` comes from a table of known models (8000 for OpenAI's, slightly under their
    8191) or is a conservative 512; ``count_word_pieces`` is an estimate (see
    :func:`ragcore.embeddings._approx.estimate_word_pieces`), since the remote tokenizer is not available
    offline. ``dimensions`` is sent for the text-embedding-3 models (which can shorten their vectors);
    every response is checked to have exactly ``dimensions`` values per text and is L2-normalised.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        dimensions: int,
        timeout: float = 30.0,
        max_input_tokens: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.model_name = model
        self.dimensions = dimensions
        self.timeout = timeout
        self.max_input_tokens = max_input_tokens or _KNOWN_LIMITS.get(model, DEFAULT_MAX_INPUT_TOKENS)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        return cls(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value(),
            model=settings.embedding_model,
            dimensions=settings.embedding_dimensions,
        )

    def count_word_pieces(self, words: Sequence[str]) -> list[int]:
        return estimate_word_pieces(words)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        # Endpoints reject empty strings; a single space embeds as "nothing".
        body: dict = {
            "model": self.model_name,
            "input": [t if t.strip() else " " for t in texts],
            "encoding_format": "float",
        }
        if self.model_name.startswith("text-embedding-3"):
            body["dimensions"] = self.dimensions
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            self.base_url + "/embeddings", data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            status = error.code
            detail = error.read()[:300].decode("utf-8", "replace")
            retryable = status in (408, 409, 429) or status >= 500
            raise EmbeddingProviderError(
                f"embeddings endpoint answered {status}: {detail}",
                retryable=retryable,
                status=status,
                retry_after=_retry_after(error.headers),
            ) from error
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise EmbeddingProviderError(
                f"embeddings endpoint unreachable: {error}", retryable=True
            ) from error
        except json.JSONDecodeError as error:
            raise EmbeddingProviderError(
                "embeddings endpoint returned invalid JSON", retryable=True
            ) from error
        return self._parse(payload, len(texts))

    def _parse(self, payload: dict, count: int) -> np.ndarray:
        try:
            items = sorted(payload["data"], key=lambda item: item["index"])
            vectors = [item["embedding"] for item in items]
            indices = [item["index"] for item in items]
        except (KeyError, TypeError) as error:
            raise EmbeddingProviderError("malformed embeddings response", retryable=False) from error
        if indices != list(range(count)):
            raise EmbeddingProviderError(
                f"embeddings response holds indices {indices[:5]}... for {count} inputs", retryable=False
            )
        array = np.asarray(vectors, dtype=np.float32)
        if array.shape != (count, self.dimensions):
            raise EmbeddingProviderError(
                f"expected {count} vectors of {self.dimensions} dimensions, got shape {array.shape}",
                retryable=False,
            )
        return normalise_rows(array)

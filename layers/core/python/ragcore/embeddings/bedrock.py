"""The ``bedrock`` provider: Amazon Titan Text Embeddings v2 through bedrock-runtime InvokeModel."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ragcore.embeddings._approx import estimate_word_pieces, normalise_rows
from ragcore.embeddings.errors import EmbeddingProviderError

if TYPE_CHECKING:
    from ragcore.config import Settings

TITAN_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)
# Error codes of bedrock-runtime worth retrying (throttling, transient service and model faults).
BEDROCK_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelTimeoutException",
        "ModelNotReadyException",
        "RequestTimeout",
    }
)


class BedrockEmbedder:
    """Titan Text Embeddings v2, one text per InvokeModel call (the model takes one input).

    Titan v2 reads up to 8,192 tokens (and 50,000 characters); ``max_input_tokens`` is 8000 for a margin,
    and ``count_word_pieces`` is an estimate (see :func:`ragcore.embeddings._approx.estimate_word_pieces`).
    Retries are left to :func:`ragcore.embeddings.embed_in_batches` (the client's own are switched off so
    that there is one retry policy): throttling and 5xx are retryable, validation and access errors not.
    """

    max_input_tokens = 8000

    def __init__(self, client, *, model: str = TITAN_V2, dimensions: int = 1024) -> None:
        if model.startswith("amazon.titan-embed-text-v2") and dimensions not in TITAN_V2_DIMENSIONS:
            raise ValueError(
                f"Titan Text Embeddings v2 produces {TITAN_V2_DIMENSIONS} dimensions, not {dimensions}"
            )
        if "/" in model:
            raise ValueError(f"{model!r} is not a Bedrock model id (for Titan v2: {TITAN_V2})")
        self.client = client
        self.model_name = model
        self.dimensions = dimensions

    @classmethod
    def from_settings(cls, settings: Settings) -> BedrockEmbedder:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "bedrock-runtime",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60
            ),
        )
        return cls(client, model=settings.embedding_model, dimensions=settings.embedding_dimensions)

    def count_word_pieces(self, words: Sequence[str]) -> list[int]:
        return estimate_word_pieces(words)

    def _one(self, text: str) -> list[float]:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

        body = {"inputText": text if text.strip() else " ", "dimensions": self.dimensions, "normalize": True}
        try:
            response = self.client.invoke_model(
                modelId=self.model_name,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            retryable = (
                code in BEDROCK_RETRYABLE_CODES or (status is not None and status >= 500) or status == 429
            )
            raise EmbeddingProviderError(
                f"Bedrock {code or status}: {error}", retryable=retryable, status=status
            ) from error
        except (ConnectionError, ReadTimeoutError) as error:
            raise EmbeddingProviderError(f"Bedrock unreachable: {error}", retryable=True) from error
        except BotoCoreError as error:
            raise EmbeddingProviderError(f"Bedrock client error: {error}", retryable=False) from error
        try:
            payload = json.loads(response["body"].read())
            return payload["embedding"]
        except (KeyError, TypeError, ValueError) as error:
            raise EmbeddingProviderError("malformed Titan response", retryable=False) from error

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        array = np.asarray([self._one(t) for t in texts], dtype=np.float32)
        if array.shape != (len(texts), self.dimensions):
            raise EmbeddingProviderError(f"Titan returned vectors of shape {array.shape}", retryable=False)
        return normalise_rows(array)

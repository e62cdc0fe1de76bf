"""One settings model for the whole platform, read lazily from the environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Literal

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The relevance floor calibrated for the local model (all-MiniLM-L6-v2) on SciFact's train queries and
# handbook questions against unrelated ones (bench/abstain_calibration.py): docs/decisions.md, "The
# relevance floor", and docs/benchmarks.md.
LOCAL_ABSTAIN_MIN_SCORE = 0.4


class Settings(BaseSettings):
    """Every knob of the platform. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    stage: str = "local"

    # Database: the application connects as a role that owns nothing and cannot bypass RLS.
    database_url: str = ""
    # Migrations connect as the owner of the schema (in AWS: the RDS master secret).
    migration_database_url: str = ""
    db_app_role: str = "rag_app"
    # In AWS the connection strings are built from Secrets Manager (see resolve_secrets): the app role's
    # secret plus the RDS Proxy endpoint, and the master secret for migrations.
    db_secret_arn: str = ""
    db_host: str = ""
    db_port: int = 5432
    db_name: str = "rag"
    migration_db_secret_arn: str = ""
    app_role_password: SecretStr = SecretStr("")
    # Where the numbered SQL files are; by default the repository's migrations/ (or one shipped beside
    # the migrate function).
    migrations_dir: str | None = None
    db_pool_min_size: int = 1
    db_pool_max_size: int = 4
    # TLS for connections built from the secret (RDS and RDS Proxy require it; a local server over a
    # Unix socket has none).
    db_sslmode: str = "require"
    # psycopg prepares a query on the server after it ran 5 times on a connection. RDS Proxy pins a
    # client to one database connection for as long as its session holds a prepared statement, which
    # defeats the proxy's multiplexing: off by default (in AWS every connection goes through the
    # proxy, and the local stack behaves the same); true only for direct connections.
    db_prepared_statements: bool = False

    # Tokens.
    jwt_secret: SecretStr = SecretStr("")
    # When set, the signing keys are read from this secret, and read again as it rotates.
    jwt_secret_arn: str = ""
    jwt_issuer: str = "rag-platform"
    # Clock skew tolerated on exp and iat: tokens are issued and checked by different Lambda environments,
    # whose clocks differ by a little (a token "issued in the future" by one second is no forgery).
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_audience: str = "rag-platform-api"
    jwt_ttl_seconds: int = 3600
    # Rotation of the signing key. The key that signed before the current one (Secrets Manager's
    # AWSPREVIOUS version when JWT_SECRET_ARN is set) still verifies tokens issued before the rotation
    # took effect everywhere, and only for as long as such a token can live (see ragcore.secrets).
    jwt_previous_secret: SecretStr = SecretStr("")
    # When the current key replaced the previous one (Unix time; from Secrets Manager when read there).
    jwt_secret_rotated_at: float = 0.0
    # How long a process trusts its copy of the keys read from JWT_SECRET_ARN before reading them again.
    jwt_secret_refresh_seconds: int = Field(default=300, ge=10)
    password_bcrypt_rounds: int = Field(default=12, ge=12, le=16)

    # Brute-force throttling, counted in the database so every Lambda environment sees the same numbers.
    # Sign-in: attempts that did not succeed, per account (e-mail) and per client address, in a fixed window.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # Registration: attempts per client address (each one can reveal whether an e-mail is taken).
    register_max_per_address: int = Field(default=20, ge=1)
    register_window_seconds: int = Field(default=3600, ge=1)
    # API keys: last_used_at is written at most once per this many seconds per key, not on every request.
    api_key_touch_seconds: int = Field(default=60, ge=1)
    # Keys an organisation may hold at once (not revoked): creating one more is 409 too_many_api_keys.
    api_keys_max_per_org: int = Field(default=100, ge=1)

    # Quotas of an organisation, the defaults: what it may hold (documents, chunks, bytes of content) and
    # how many questions it may ask per UTC day and per minute. An operator overrides them per
    # organisation in the database (org_quotas; see docs/decisions.md, "Quota overrides are set by the
    # operator"). A limit of 0 allows nothing.
    quota_max_documents: int = Field(default=10_000, ge=0)
    quota_max_chunks: int = Field(default=500_000, ge=0)
    quota_max_stored_bytes: int = Field(default=1 << 30, ge=0)
    quota_max_queries_per_day: int = Field(default=50_000, ge=0)
    quota_max_queries_per_minute: int = Field(default=1_200, ge=0)

    # Ingestion.
    queue_url: str = ""
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    max_document_bytes: int = 5 * 1024 * 1024
    chunk_size_words: int = Field(default=512, ge=16)
    chunk_overlap_words: int = Field(default=64, ge=0)
    embed_batch_size: int = Field(default=64, ge=1, le=100)
    embed_max_retries: int = 5
    # Attempts before a document is marked failed; the queue's maxReceiveCount must be larger (5).
    ingest_max_attempts: int = Field(default=3, ge=1)
    # Files (ragcore.extractors): limits checked before the expensive work. Bytes before parsing, pages
    # before extracting text, the unpacked size of a zip container (DOCX) before opening it; characters
    # as text comes out. A parse runs in a child process killed after the time budget, with its address
    # space capped, so a parser that spins or a decompression bomb cannot stall or sink the worker.
    extract_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    extract_max_pages: int = Field(default=2000, ge=1)
    extract_max_characters: int = Field(default=10_000_000, ge=1)
    extract_max_unpacked_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    extract_time_budget_seconds: float = Field(default=60.0, gt=0)
    extract_max_memory_mb: int = Field(default=1024, ge=64)
    # Chunks one document may make (checked after chunking, before any embedding is paid for).
    max_chunks_per_document: int = Field(default=5000, ge=1)
    # A document of more chunks than ingest_range_chunks is embedded in ranges of that many chunks, one
    # queue message (one invocation) each, so no invocation embeds more than a range (about 10 s for 200
    # chunks on one core against the function's 300 s); ingest_range_chains ranges of one document are in
    # the queue at a time, each range sending the next, so other documents interleave with them
    # (docs/decisions.md, "Large documents are embedded in chained chunk-range messages").
    ingest_range_chunks: int = Field(default=200, ge=1)
    ingest_range_chains: int = Field(default=2, ge=1)
    # The reaper (a scheduled function; at start-up and periodically in the local stack): a document
    # `pending` for longer than the first bound is re-sent (at most reaper_max_requeues times, then failed);
    # one `processing` for longer than the second is re-sent, or failed once its attempts are used up. The
    # second bound exceeds the queue's visibility timeout (6 x 300 s in AWS), so the reaper only acts
    # after SQS itself would have re-delivered.
    reaper_pending_after_seconds: int = Field(default=900, ge=0)
    reaper_processing_after_seconds: int = Field(default=2100, ge=0)
    reaper_max_requeues: int = Field(default=3, ge=0)
    reaper_batch_size: int = Field(default=500, ge=1)

    # Uploaded files (POST /documents/uploads; their byte limit is extract_max_bytes): the bucket, how
    # long a presigned PUT stays valid, and how long past a URL's expiry a document still waiting for its
    # file is given (a PUT begun just before expiry may still be arriving) before the reaper has the
    # bucket checked and, when the object is not there, the document failed.
    upload_bucket: str = ""
    upload_url_expiry_seconds: int = Field(default=900, ge=60, le=604800)
    upload_grace_seconds: int = Field(default=300, ge=0)

    # Providers.
    embedding_provider: Literal["local", "openai", "bedrock"] = "local"
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_dimensions: int = 384
    # Where the local provider keeps the ONNX models it builds from the packaged weights
    # (default ~/.cache/ragcore/models, or the temp dir when home is not writable, as in Lambda).
    model_cache_dir: str | None = None
    generation_provider: Literal["extractive", "openai", "bedrock"] = "extractive"
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr = SecretStr("")
    openai_api_key_secret_arn: str = ""
    # The chat model (openai) or model / inference profile id (bedrock); required by both.
    generation_model: str = ""
    generation_max_tokens: int = Field(default=1024, ge=1, le=32768)
    # None: the model's default (some reasoning models refuse any other value).
    generation_temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    # Connecting, and the longest wait for the next piece of the answer (a stalled stream fails).
    generation_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    generation_read_timeout_seconds: float = Field(default=60.0, gt=0)
    # Retries of a throttled (429) or failing (5xx, timeout, connection) call, only before the first
    # token: exponential backoff with full jitter, Retry-After honoured, each wait at most the cap.
    generation_max_retries: int = Field(default=2, ge=0, le=10)
    generation_retry_base_seconds: float = Field(default=0.5, ge=0)
    generation_retry_max_seconds: float = Field(default=8.0, ge=0)

    # Conversations. History sent to a model to condense a follow-up into a standalone question: at most
    # this many of the latest turns (a turn: a question and its answer) and this many tokens (counted with
    # the embedder's tokenizer, an estimate of the model's), older turns dropped first. The extractive
    # generator has no model: it retrieves with the follow-up plus the previous questions, at most
    # conversation_context_questions of them. A conversation holds at most conversation_max_turns turns.
    conversation_history_max_turns: int = Field(default=6, ge=1, le=100)
    conversation_history_max_tokens: int = Field(default=2000, ge=64, le=100_000)
    conversation_condense_max_tokens: int = Field(default=200, ge=16, le=4000)
    conversation_context_questions: int = Field(default=2, ge=1, le=20)
    conversation_max_turns: int = Field(default=500, ge=1, le=100_000)

    # Browser origins allowed to call the API and the stream (CORS). Comma-separated or a JSON list;
    # empty: no CORS headers at all.
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # Retrieval. A tenant holding at least tenant_index_min_chunks chunks gets a partial HNSW index of its
    # own (built by the index maintenance); smaller tenants are searched exactly. An indexed tenant that
    # shrinks below half the threshold goes back to exact search (the gap stops a tenant near the
    # threshold from being rebuilt over and over).
    tenant_index_min_chunks: int = Field(default=20_000, ge=1)
    hnsw_ef_search: int = Field(default=100, ge=10, le=1000)
    # Twice pgvector's defaults: chunks of one document sit close together, and with m = 16 some such
    # groups were unreachable in a tenant's graph whatever ef_search (docs/benchmarks.md).
    tenant_index_m: int = Field(default=32, ge=4, le=100)
    tenant_index_ef_construction: int = Field(default=128, ge=16, le=1000)
    # maintenance_work_mem of the connection that builds a tenant's index (a graph that fits builds
    # several times faster).
    tenant_index_build_memory_mb: int = Field(default=256, ge=64, le=16384)
    # Okapi BM25 of the lexical retriever (tuned on SciFact's train queries, see docs/decisions.md).
    bm25_k1: float = Field(default=1.2, ge=0.0, le=10.0)
    bm25_b: float = Field(default=0.75, ge=0.0, le=1.0)
    # Hybrid mode: how many chunks each retriever contributes before fusion (at least top_k), how they
    # are fused (ragcore.retrieval.hybrid: "zscore", "convex" or "rrf"), the weight of the dense
    # retriever (the lexical one gets the rest) and RRF's rank constant. Defaults tuned on SciFact train.
    hybrid_candidates: int = Field(default=100, ge=1, le=1000)
    hybrid_fusion: Literal["zscore", "convex", "rrf"] = "zscore"
    hybrid_dense_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    hybrid_rrf_k: int = Field(default=60, ge=1, le=1000)
    # The relevance floor: when no sentence of the best retrieved chunks has a cosine similarity to the
    # question that reaches it, the answer abstains ("I could not find ...") and no generator runs. A
    # cosine depends on the embedding model, so the default (None) is the floor calibrated for the local
    # model (LOCAL_ABSTAIN_MIN_SCORE, bench/abstain_calibration.py) and off for other providers until
    # calibrated for theirs; 0 disables.
    abstain_min_score: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value):
        if isinstance(value, str):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else text.split(",")
        else:
            items = list(value or ())
        origins = tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())
        for origin in origins:
            # An Origin header is scheme://host[:port]; anything else would never match one.
            if "://" not in origin or origin.count("/") != 2 or origin == "*":
                raise ValueError(f"CORS origin must look like https://host[:port], got {origin!r}")
        return origins

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret_is_long_enough(cls, value: SecretStr) -> SecretStr:
        # Empty means "read it from jwt_secret_arn"; anything given must be a real HS256 key (RFC 8725,
        # 3.5): a short one stops the process when it starts instead of signing guessable tokens.
        length = len(value.get_secret_value().encode())
        if 0 < length < 32:
            raise ValueError(f"JWT_SECRET must be at least 32 bytes long (got {length})")
        return value

    @field_validator("chunk_overlap_words")
    @classmethod
    def _overlap_smaller_than_window(cls, overlap: int, info):
        size = info.data.get("chunk_size_words", 512)
        if overlap >= size:
            raise ValueError("chunk_overlap_words must be smaller than chunk_size_words")
        return overlap

    @model_validator(mode="after")
    def _generation_provider_is_complete(self):
        if self.generation_provider in ("openai", "bedrock") and not self.generation_model:
            raise ValueError(
                f"GENERATION_MODEL is required with GENERATION_PROVIDER={self.generation_provider}"
            )
        if (
            self.generation_provider == "openai"
            and not self.openai_api_key.get_secret_value()
            and not self.openai_api_key_secret_arn
        ):
            # The SDK refuses to run without a key; keyless servers (Ollama, vLLM) accept any value.
            raise ValueError(
                "OPENAI_API_KEY (or OPENAI_API_KEY_SECRET_ARN) is required with GENERATION_PROVIDER=openai"
            )
        return self

    def relevance_floor(self) -> float:
        """The relevance floor in force (0: off); see ``abstain_min_score``."""
        if self.abstain_min_score is not None:
            return self.abstain_min_score
        return LOCAL_ABSTAIN_MIN_SCORE if self.embedding_provider == "local" else 0.0

    def require_jwt_secret(self) -> bytes:
        """The signing secret as bytes; refuses to run with a secret shorter than 32 bytes."""
        secret = self.jwt_secret.get_secret_value().encode()
        if len(secret) < 32:
            raise ValueError("JWT_SECRET must be set and at least 32 bytes long")
        return secret


def resolve_secrets(settings: Settings, fetch: Callable[[str], str]) -> Settings:
    """Fill secret values from their Secrets Manager ARNs (``fetch`` returns a secret's string).

    Values given directly win, so local runs and tests never touch Secrets Manager.
    """
    updates: dict[str, object] = {}
    if settings.db_secret_arn:
        app = json.loads(fetch(settings.db_secret_arn))
        updates["app_role_password"] = SecretStr(app["password"])
        if not settings.database_url:
            updates["database_url"] = make_conninfo(
                host=settings.db_host or app.get("host", ""),
                port=settings.db_port,
                dbname=settings.db_name,
                user=app.get("username", settings.db_app_role),
                password=app["password"],
                sslmode=settings.db_sslmode,
            )
    if settings.migration_db_secret_arn and not settings.migration_database_url:
        owner = json.loads(fetch(settings.migration_db_secret_arn))
        updates["migration_database_url"] = make_conninfo(
            host=owner["host"],
            port=owner.get("port", 5432),
            dbname=owner.get("dbname", settings.db_name),
            user=owner["username"],
            password=owner["password"],
            sslmode="require",
        )
    if settings.jwt_secret_arn and not settings.jwt_secret.get_secret_value():
        updates["jwt_secret"] = SecretStr(fetch(settings.jwt_secret_arn))
    if settings.openai_api_key_secret_arn and not settings.openai_api_key.get_secret_value():
        updates["openai_api_key"] = SecretStr(fetch(settings.openai_api_key_secret_arn))
    return settings.model_copy(update=updates) if updates else settings


def _fetch_from_secrets_manager(arn: str) -> str:
    import boto3

    region = arn.split(":")[3] if arn.startswith("arn:") else None
    return boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=arn)["SecretString"]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment (and Secrets Manager) on first use."""
    return resolve_secrets(Settings(), _fetch_from_secrets_manager)


def reset_settings() -> None:
    """Forget cached settings so the next call re-reads the environment (tests, local stack)."""
    from .secrets import get_jwt_key_ring  # imported here: ragcore.secrets builds on this module

    get_settings.cache_clear()
    get_jwt_key_ring.cache_clear()

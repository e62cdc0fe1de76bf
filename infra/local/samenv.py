"""The `--env-vars` file for `sam local`, written by the local stack when it serves PostgreSQL over TCP.

`sam local start-api|invoke --env-vars <DATA_DIR>/sam-env.json` then runs the functions of
template-local.yaml in containers against this stack's database, JWT secret, queue and bucket. The committed
example (infra/sam/env.example.json) has the same shape with placeholder values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "sam-env.json"


def sam_env_vars(
    *, database_url: str, migration_database_url: str, jwt_secret: str, queue_url: str, upload_bucket: str
) -> dict[str, dict[str, str]]:
    """SAM's format: "Parameters" applies to every function, a logical id to that function only.
    Only variables the template declares can be set this way."""
    return {
        "Parameters": {
            "DATABASE_URL": database_url,
            "JWT_SECRET": jwt_secret,
            "QUEUE_URL": queue_url,
            "UPLOAD_BUCKET": upload_bucket,
        },
        # Only the migrate function may connect as the schema owner.
        "MigrateFunction": {"MIGRATION_DATABASE_URL": migration_database_url},
    }


def write_sam_env_vars(data_dir: Path, values: Mapping[str, Mapping[str, str]]) -> Path:
    """Writes the file 0600 (it holds the JWT secret) and returns its path."""
    path = data_dir / FILE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(values, handle, indent=2)
        handle.write("\n")
    return path

import pytest
from ragcore.config import Settings, get_settings, reset_settings


def test_environment_variables_fill_settings(monkeypatch):
    monkeypatch.setenv("CHUNK_SIZE_WORDS", "256")
    monkeypatch.setenv("EMBED_BATCH_SIZE", "32")
    monkeypatch.setenv("JWT_SECRET", "k" * 40)
    reset_settings()
    try:
        settings = get_settings()
        assert settings.chunk_size_words == 256
        assert settings.embed_batch_size == 32
        assert settings.require_jwt_secret() == b"k" * 40
        assert get_settings() is settings  # read once, then cached
    finally:
        reset_settings()


def test_defaults_are_the_documented_ones():
    settings = Settings()
    assert (settings.chunk_size_words, settings.chunk_overlap_words) == (512, 64)
    assert settings.embedding_provider == "local"
    assert settings.generation_provider == "extractive"
    assert settings.embedding_dimensions == 384


@pytest.mark.parametrize(
    "values",
    [
        {"embed_batch_size": 101},
        {"chunk_size_words": 100, "chunk_overlap_words": 100},
        {"embedding_provider": "word2vec"},
    ],
)
def test_invalid_values_fail_at_startup(values):
    with pytest.raises(ValueError):
        Settings(**values)


def test_missing_jwt_secret_fails():
    with pytest.raises(ValueError, match="JWT_SECRET"):
        Settings().require_jwt_secret()


def test_secrets_are_resolved_from_their_arns_without_overriding_given_values():
    import json

    from ragcore.config import resolve_secrets

    secrets = {
        "arn:aws:secretsmanager:eu-west-1:1:secret:app": json.dumps(
            {"username": "rag_app", "password": "p@ss"}
        ),
        "arn:aws:secretsmanager:eu-west-1:1:secret:owner": json.dumps(
            {"username": "master", "password": "m", "host": "db.internal", "port": 5432, "dbname": "rag"}
        ),
        "arn:aws:secretsmanager:eu-west-1:1:secret:jwt": "j" * 40,
    }
    settings = resolve_secrets(
        Settings(
            db_secret_arn="arn:aws:secretsmanager:eu-west-1:1:secret:app",
            db_host="proxy.internal",
            migration_db_secret_arn="arn:aws:secretsmanager:eu-west-1:1:secret:owner",
            jwt_secret_arn="arn:aws:secretsmanager:eu-west-1:1:secret:jwt",
        ),
        secrets.__getitem__,
    )
    assert "host=proxy.internal" in settings.database_url and "user=rag_app" in settings.database_url
    assert "sslmode=require" in settings.database_url
    assert (
        "host=db.internal" in settings.migration_database_url
        and "user=master" in settings.migration_database_url
    )
    assert settings.require_jwt_secret() == b"j" * 40
    assert settings.app_role_password.get_secret_value() == "p@ss"

    given = resolve_secrets(Settings(jwt_secret="g" * 32, jwt_secret_arn="arn:x"), secrets.__getitem__)
    assert given.require_jwt_secret() == b"g" * 32

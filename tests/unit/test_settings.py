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

import pytest
from ragcore.config import Settings, reset_settings


@pytest.fixture(autouse=True)
def _settings_from_a_clean_environment(monkeypatch):
    """Unit tests see only the environment they set themselves, whatever ran before them."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    reset_settings()
    yield
    reset_settings()

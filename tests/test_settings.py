"""Settings: one frozen dataclass from the environment, failing fast with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedding_engine.errors import SettingsError
from embedding_engine.settings import DEFAULT_MODEL_ID, Settings, bundled_model_path


def test_defaults_serve_the_bundled_model() -> None:
    settings = Settings.from_env({})
    assert settings.model_id == DEFAULT_MODEL_ID
    assert settings.model_source == str(bundled_model_path())
    assert (settings.max_inputs, settings.max_total_tokens) == (2048, None)  # None: from throughput
    assert settings.request_timeout_seconds == 29
    assert settings.max_request_bytes == 6 * 1024 * 1024
    assert settings.max_response_bytes < settings.max_request_bytes
    assert not settings.auth_enabled


def test_model_path_and_id(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text("[]")
    settings = Settings.from_env({"MODEL_PATH": str(tmp_path), "MODEL_ID": "org/model"})
    assert (settings.model_source, settings.model_id) == (str(tmp_path), "org/model")
    assert Settings.from_env({"MODEL_PATH": str(tmp_path)}).model_id == tmp_path.name
    assert Settings.from_env({"MODEL_ID": "org/cached"}).model_source == "org/cached"


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "STRICT_MODEL": "true",
            "MAX_INPUTS": "16",
            "API_KEYS": " a, b ,,",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency",
        }
    )
    assert settings.strict_model
    assert settings.max_inputs == 16
    assert settings.api_keys == ("a", "b")
    assert settings.auth_enabled
    assert settings.initialization_type == "provisioned-concurrency"


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"MAX_INPUTS": "many"}, "MAX_INPUTS='many' is not an integer"),
        ({"MAX_TOTAL_TOKENS": "0"}, "MAX_TOTAL_TOKENS=0 must be a positive integer"),
        ({"STRICT_MODEL": "maybe"}, "STRICT_MODEL='maybe' is not a boolean"),
        ({"MODEL_PATH": "/nonexistent/model"}, "is not a model folder"),
        ({"API_KEYS": " , "}, "API_KEYS is set but holds no key"),
        ({"API_KEYS": " "}, "API_KEYS is set but holds no key"),
        ({"REQUEST_TIMEOUT_SECONDS": "soon"}, "is not a number of seconds"),
        ({"REQUEST_TIMEOUT_SECONDS": "0.5"}, "between 1 and 900"),
        ({"MAX_DOCUMENT_CHUNKS": "0"}, "MAX_DOCUMENT_CHUNKS=0 must be a positive integer"),
    ],
)
def test_bad_values_fail_fast(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(environ)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.max_inputs = 1  # type: ignore[misc]

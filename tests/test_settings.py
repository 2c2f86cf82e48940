"""Settings: one frozen dataclass from the environment, failing fast with a clear message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from embedding_engine.errors import SettingsError
from embedding_engine.settings import DEFAULT_MODEL_ID, Settings, bundled_model_path, variables


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


README = Path(__file__).resolve().parent.parent / "README.md"
UNITS = {"KiB": 1024, "MiB": 1024 * 1024}


def readme_settings() -> dict[str, str]:
    """README's Settings table: each variable with its Default cell (a row may name several
    variables, `A` / `B`, with as many defaults)."""
    section = README.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        defaults = cells[1].split(" / ")
        if len(defaults) != len(names):  # one default for them all ("unset")
            defaults = [cells[1]] * len(names)
        found.update(zip(names, defaults, strict=True))
    return found


class Prose(str):
    """A README default in words: one derived at start-up (the CPUs, the model folder)."""


# Defaults the code derives at start-up, which the README describes in words.
DERIVED = {"MODEL_PATH", "MAX_TOTAL_TOKENS", "TORCH_NUM_THREADS"}


def readme_value(cell: str) -> object:
    """A README default as a value (`false`, `unset`, 2048, 6 MiB minus 16 KiB, `a/literal`), or
    `Prose`."""
    text = cell.split(" (")[0].strip()
    if re.fullmatch(r"`[^`]+`", text):
        text = text.strip("`")
        return {"true": True, "false": False}.get(text, text)
    if text == "unset":
        return None
    terms = re.fullmatch(r"([\d,.]+)(?: (KiB|MiB))?(?: \u2212 ([\d,.]+)(?: (KiB|MiB))?)?", text)
    if terms is None:
        return Prose(cell)
    first, first_unit, second, second_unit = terms.groups()
    value = float(first.replace(",", "")) * UNITS.get(first_unit or "", 1)
    if second:
        value -= float(second.replace(",", "")) * UNITS.get(second_unit or "", 1)
    return int(value) if value == int(value) else value


def test_the_readme_lists_every_setting_with_its_default() -> None:
    documented = readme_settings()
    code = variables()
    internal = {"AWS_LAMBDA_INITIALIZATION_TYPE"}  # set by Lambda, not by the user
    assert set(code) - internal - set(documented) == set(), "variables the README's Settings table lacks"
    assert set(documented) - set(code) == set(), "README rows for variables the code does not read"
    values = {name: readme_value(cell) for name, cell in documented.items()}
    assert {name for name, value in values.items() if isinstance(value, Prose)} == DERIVED
    for name, value in values.items():
        if name not in DERIVED:
            default = None if code[name] == () else code[name]  # no keys: unset
            assert value == default, (
                f"README says {name} defaults to {documented[name]}; the code: {code[name]!r}"
            )

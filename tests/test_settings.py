"""Settings: one frozen dataclass from the environment, failing fast with a clear message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from embedding_engine import settings as settings_module
from embedding_engine.errors import SettingsError
from embedding_engine.settings import (
    DEFAULT_MODEL_ID,
    Settings,
    bundled_model_path,
    cgroup_cpu_quota,
    variables,
)


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
        ({"BACKEND": "tensorflow"}, "BACKEND='tensorflow' must be one of: torch, onnx"),
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


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),  # cgroup v2, unlimited
        ({"cpu.max": "170000 100000\n"}, 1.7),  # cgroup v2, `--cpus 1.7`
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, unlimited
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
        ({}, None),  # no cgroup file system
        ({"cpu.max": "\n"}, None),  # unreadable: as if unlimited, never a failed init
    ],
)
def test_the_cgroup_cpu_quota_is_read_from_either_version(
    tmp_path: Path, files: dict[str, str], quota: float | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == quota


@pytest.mark.parametrize(
    ("environ", "affinity", "quota", "threads"),
    [
        ({}, 2, None, 2),  # outside Lambda, no quota: the CPUs it may run on
        ({}, 2, 1.0, 1),  # `docker run --cpus 1` shows 2 CPUs: one CPU's time
        ({}, 2, 1.7, 2),
        ({}, 2, 1.4, 1),
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}, 2, None, 1),  # Lambda shows 2 CPUs: 1 vCPU's time
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}, 2, None, 2),  # 1.7 vCPUs' time
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}, 2, None, 2),  # two vCPUs' time
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}, 2, None, 1),  # 1.16
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"}, 2, None, 1),  # never fewer than one
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}, 6, None, 6),  # 5.8 vCPUs' time on 6 CPUs
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769", "TORCH_NUM_THREADS": "2"}, 2, None, 2),  # set: wins
    ],
)
def test_torch_threads_follow_the_cpu_time_the_function_has(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], affinity: int, quota: float | None, threads: int
) -> None:
    monkeypatch.setattr(settings_module, "available_cpus", lambda: affinity)
    monkeypatch.setattr(settings_module, "cgroup_cpu_quota", lambda: quota)
    assert Settings.from_env(environ).torch_threads == threads

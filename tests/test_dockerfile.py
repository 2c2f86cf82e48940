"""The Dockerfile cannot be built here, so these tests hold it to the code it packages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from embedding_engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
INSTRUCTIONS = re.sub(r"\\\n", " ", DOCKERFILE)


def instruction_args(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in INSTRUCTIONS.splitlines() if line.startswith(f"{name} ")]


def final_stage_env() -> dict[str, str]:
    final_stage = INSTRUCTIONS.rsplit("\nFROM ", 1)[1]
    pairs: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            pairs.update(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def test_the_cmd_names_the_real_handler(handler_module: Any) -> None:
    [cmd] = instruction_args("CMD")
    module_name, function_name = re.fullmatch(r'\["(\w+)\.(\w+)"\]', cmd).groups()  # type: ignore[union-attr]
    assert Path(handler_module.__file__) == ROOT / "function" / f"{module_name}.py"
    assert callable(getattr(handler_module, function_name))


def test_the_code_goes_where_lambda_looks() -> None:
    copies = instruction_args("COPY")
    assert "layer/python/ /opt/python/" in copies
    assert "function/ ${LAMBDA_TASK_ROOT}/" in copies


def test_the_model_path_is_the_one_the_settings_read(tmp_path: Path) -> None:
    env = final_stage_env()
    assert env["MODEL_PATH"] == "/opt/model"
    assert "snapshot_download" in DOCKERFILE and "local_dir='/opt/model'" in DOCKERFILE
    assert "COPY --from=model /opt/model /opt/model" in INSTRUCTIONS
    (tmp_path / "modules.json").write_text("[]")
    settings = Settings.from_env({"MODEL_PATH": str(tmp_path), "MODEL_ID": "org/model"})
    assert (settings.model_source, settings.model_id) == (str(tmp_path), "org/model")


@pytest.mark.parametrize("variable", ["MODEL_PATH", "MODEL_ID"])
def test_every_setting_the_image_sets_is_read_by_the_settings(variable: str) -> None:
    settings_source = (ROOT / "layer/python/embedding_engine/settings.py").read_text(encoding="utf-8")
    assert variable in final_stage_env()
    assert f'"{variable}"' in settings_source


def test_nothing_downloads_or_writes_outside_tmp_at_run_time() -> None:
    env = final_stage_env()
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HF_HOME"].startswith("/tmp/")
    assert env["SENTENCE_TRANSFORMERS_HOME"].startswith("/tmp/")


def test_torch_is_the_pinned_cpu_build() -> None:
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^torch==([\d.]+)$", requirements, re.MULTILINE)
    assert pinned is not None
    assert f"torch=={pinned.group(1)}+cpu" in INSTRUCTIONS
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in INSTRUCTIONS
    assert "-r /tmp/requirements.txt" in INSTRUCTIONS

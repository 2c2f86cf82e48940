"""The Dockerfile cannot be built here, so these tests hold it to the code it packages."""

from __future__ import annotations

import ast
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
    for cache in ("HF_HOME", "HF_HUB_CACHE", "SENTENCE_TRANSFORMERS_HOME", "TORCH_HOME", "XDG_CACHE_HOME"):
        assert env[cache].startswith("/tmp/"), cache


def test_the_model_is_baked_in_at_build_time_read_only() -> None:
    [default] = set(re.findall(r"^ARG MODEL_ID=(\S+)$", DOCKERFILE, re.MULTILINE))
    assert default == "sentence-transformers/all-mpnet-base-v2"  # the seed's model, 768 dimensions
    assert final_stage_env()["MODEL_ID"] == "${MODEL_ID}"
    assert "chmod -R a=rX /opt/model" in INSTRUCTIONS


def test_the_runtime_stage_installs_no_python_package_and_carries_no_tests() -> None:
    stages = INSTRUCTIONS.split("\nFROM ")
    assert len(stages) >= 4  # model, deps, runtime (and the preamble)
    runtime = stages[-1]
    assert "pip install" not in runtime
    assert "--no-cache-dir" in stages[2]
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignored[0] == "*"  # only what is listed after it goes into the build context
    assert not any(line.startswith("!tests") for line in ignored)


def test_bytecode_is_compiled_for_the_read_only_code_directory() -> None:
    runtime = INSTRUCTIONS.split("\nFROM ")[-1]
    assert re.search(r"compileall .*/opt/python \$\{LAMBDA_TASK_ROOT\}", runtime)


def test_python_paths_match_the_base_image() -> None:
    [version] = re.findall(r"public\.ecr\.aws/lambda/python:(3\.\d+)", DOCKERFILE)
    assert set(re.findall(r"/var/lang/lib/python(3\.\d+)/", DOCKERFILE)) == {version}


def test_torch_is_the_pinned_cpu_build_and_the_rest_the_hashed_lock() -> None:
    pins = (ROOT / "requirements-torch.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^torch==([\d.]+)$", pins, re.MULTILINE)
    assert pinned is not None
    assert "COPY requirements-torch.txt requirements.txt /tmp/" in INSTRUCTIONS
    assert "sed -n 's/^torch==//p' /tmp/requirements-torch.txt" in INSTRUCTIONS
    assert 'torch="torch==${version}+cpu"; index=https://download.pytorch.org/whl/cpu' in INSTRUCTIONS
    assert 'torch="torch==${version}"; index=https://pypi.org/simple' in INSTRUCTIONS  # arm64: CPU build
    assert '--no-deps --target /deps --index-url "${index}" "${torch}"' in INSTRUCTIONS
    assert "--no-deps --require-hashes --target /deps -r /tmp/requirements.txt" in INSTRUCTIONS
    assert "torch" not in {
        line.split("==")[0] for line in (ROOT / "requirements.txt").read_text().splitlines()
    }


def test_jemalloc_is_installed_and_preloaded() -> None:
    """What `make run` does too (Makefile: JEMALLOC): glibc's malloc fragments under varied traffic."""
    runtime = INSTRUCTIONS.split("\nFROM ")[-1]
    library = final_stage_env()["LD_PRELOAD"]
    assert re.search(r"dnf install -y jemalloc ", runtime)
    assert f"test -f {library}" in runtime  # the build fails if the package puts it elsewhere
    assert library.endswith("/libjemalloc.so.2")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [make_conf] = re.findall(r"^MALLOC_CONF \?= (\S+)$", makefile, re.MULTILINE)
    assert final_stage_env()["MALLOC_CONF"] == make_conf  # the same jemalloc as `make run`


def test_the_development_modules_left_out_of_the_image_are_imported_by_nothing_it_keeps() -> None:
    [removal] = [
        args for args in instruction_args("RUN") if args.startswith("cd /opt/python/embedding_engine")
    ]
    left_out = {name.removesuffix(".py") for name in removal.split("rm ", 1)[1].split()}
    assert left_out == {"__main__", "cli", "serve", "local_db"}
    package = ROOT / "layer/python/embedding_engine"
    assert all((package / f"{name}.py").is_file() for name in left_out)
    kept = [path for path in package.rglob("*.py") if path.parent != package or path.stem not in left_out]
    sources = [*kept, *(ROOT / "function").glob("*.py")]
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom | ast.Import)
            for module in (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            )
        }
        assert not {f"embedding_engine.{name}" for name in left_out} & imported, path

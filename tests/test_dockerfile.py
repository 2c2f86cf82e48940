"""The Dockerfile held to the code it packages, without building it (`make image-test` builds and
boots the image): what it names exists, what it sets is read, and it assumes nothing of its base."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from embedding_engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
# The instructions, one a line (continuations joined), without comments.
INSTRUCTIONS = re.sub(
    r"\\\n", " ", "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
)
BUILD_SCRIPT = (ROOT / "image" / "build.sh").read_text(encoding="utf-8")


def instruction_args(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in INSTRUCTIONS.splitlines() if line.startswith(f"{name} ")]


def stages() -> dict[str, str]:
    """Each stage's instructions, by its name (the last, unnamed one: "runtime")."""
    found = {}
    for chunk in INSTRUCTIONS.split("\nFROM ")[1:]:
        header, _, body = chunk.partition("\n")
        name = header.split(" AS ")[1].strip() if " AS " in header else "runtime"
        found[name] = body
    return found


def final_stage_env() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in stages()["runtime"].splitlines():
        if line.startswith("ENV "):
            pairs.update(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def test_the_cmd_names_the_real_handler(handler_module: Any) -> None:
    [cmd] = instruction_args("CMD")
    module_name, function_name = re.fullmatch(r'\["(\w+)\.(\w+)"\]', cmd).groups()  # type: ignore[union-attr]
    assert Path(handler_module.__file__) == ROOT / "function" / f"{module_name}.py"
    assert callable(getattr(handler_module, function_name))


def test_the_code_goes_where_lambda_looks_whatever_the_base() -> None:
    runtime = stages()["runtime"]
    assert "COPY layer/python/ /opt/python/" in runtime
    assert "COPY function/ /var/task/" in runtime
    assert "ENV LAMBDA_TASK_ROOT=/var/task" in runtime and "WORKDIR /var/task" in runtime
    # Nothing of AWS's base is assumed: its Python's paths, its variables, a `python` command.
    assert "/var/lang" not in DOCKERFILE
    assert "${LAMBDA_TASK_ROOT}" not in DOCKERFILE
    assert not re.search(r"(?<![\w/])python -", INSTRUCTIONS)
    assert not DOCKERFILE.startswith("# syntax=")  # BuildKit would fetch that frontend from Docker Hub


def test_every_input_from_elsewhere_is_a_build_argument() -> None:
    arguments = {arg.split("=")[0] for arg in instruction_args("ARG")}
    assert {"BASE_IMAGE", "WHEELS_SOURCE", "MODEL_SOURCE", "PIP_INDEX_URL", "TORCH_INDEX_URL"} <= arguments
    assert {"MODEL_ID", "HF_ENDPOINT", "WITH_ONNX"} <= arguments
    names = set(stages())
    for source, choices in {
        "WHEELS_SOURCE": ("index", "context"),
        "MODEL_SOURCE": ("hub", "context"),
    }.items():
        prefix = "wheels" if source == "WHEELS_SOURCE" else "model"
        assert {f"{prefix}-{choice}" for choice in choices} <= names
        assert f"FROM {prefix}-${{{source}}} AS " in INSTRUCTIONS
    # The build contexts image/build.sh passes are the ones the context stages copy from.
    assert "COPY --from=wheels . /wheels/" in stages()["wheels-context"]
    assert "COPY --from=model . /opt/model/" in stages()["model-context"]
    assert "--build-arg WHEELS_SOURCE=context --build-context wheels=" in BUILD_SCRIPT
    assert "--build-arg MODEL_SOURCE=context --build-context model=" in BUILD_SCRIPT


def test_the_build_context_holds_every_file_the_dockerfile_copies() -> None:
    """.dockerignore ignores everything but what it lists: each COPY from the context is listed."""
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignored[0] == "*"
    listed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    sources = {
        source.rstrip("/")
        for copy in instruction_args("COPY")
        if not copy.startswith("--from=")
        for source in copy.split()[:-1]
    }
    assert sources <= listed
    assert all((ROOT / source).exists() for source in sources)
    assert not any(line.startswith("!tests") for line in ignored)


def test_the_model_path_is_the_one_the_settings_read(tmp_path: Path) -> None:
    assert final_stage_env()["MODEL_PATH"] == "/opt/model"
    assert "local_dir='/opt/model'" in stages()["model-hub"]
    assert "COPY --from=model-files /opt/model /opt/model" in stages()["runtime"]
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
    assert all("chmod -R a=rX /opt/model" in stages()[name] for name in ("model-hub", "model-context"))


def test_only_the_deps_stage_installs_and_it_installs_the_hashed_lock_from_wheels_alone() -> None:
    deps = stages()["deps"]
    assert "--no-index --find-links /wheels" in deps
    assert "-r /tmp/requirements-torch.txt" in deps
    assert "--require-hashes -r /tmp/requirements.txt" in deps
    assert "--require-hashes --index-url" in stages()["wheels-index"]  # downloads checked as well
    assert "pip install" not in stages()["runtime"]
    assert "torch" not in {
        line.split("==")[0] for line in (ROOT / "requirements.txt").read_text().splitlines()
    }


def test_bytecode_is_compiled_for_the_read_only_code_directories() -> None:
    """Compiled where each part is installed, for the paths it runs from (`make image-test` shows
    that nothing is compiled, or written, at run time)."""
    assert re.search(r"compileall .* -d /opt/python .* /deps$", stages()["deps"], re.MULTILINE)
    assert re.search(
        r"compileall .* /opt/python/embedding_engine /var/task$", stages()["runtime"], re.MULTILINE
    )


def test_jemalloc_is_preloaded_as_in_make_run() -> None:
    """What `make run` does too (Makefile: JEMALLOC): glibc's malloc fragments under varied traffic."""
    env = final_stage_env()
    assert env["LD_PRELOAD"] == "libjemalloc.so.2"  # a name: the loader finds it on any base
    assert "LD_PRELOAD=libjemalloc.so.2 grep -q libjemalloc /proc/self/maps" in stages()["runtime"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [make_conf] = re.findall(r"^MALLOC_CONF \?= (\S+)$", makefile, re.MULTILINE)
    assert env["MALLOC_CONF"] == make_conf


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

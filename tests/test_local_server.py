"""`make run`'s server, for real: uvicorn on loopback, called over HTTP by curl-style requests and the
official openai client."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from openai import OpenAI

from helpers import cosine_rows

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_run_command(port: int, pgdata: Path) -> list[str]:
    """The Makefile's `run` recipe, with this interpreter, the given port and database folder."""
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\nrun:", 1)[1].splitlines()[1]
    match = re.search(r"\$\(BIN\)/python (\S+) --host \$\(HOST\) --port \$\(PORT\)$", recipe)
    assert match, f"unexpected run recipe: {recipe!r}"
    return [
        sys.executable,
        match.group(1),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--pgdata",
        str(pgdata),
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`make run` as a process: its URL and its folder (server.log, pgdata/)."""
    port = free_port()
    folder = tmp_path_factory.mktemp("server")
    log_path = folder / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "POWERTOOLS_METRICS_DISABLED": "true"}
    env.pop("DATABASE_URL", None)  # as on a fresh clone: `make run` starts its own PostgreSQL
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            make_run_command(port, folder / "pgdata"), cwd=ROOT, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text(errors="replace")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        else:
            pytest.fail(f"server not ready: {log_path.read_text(errors='replace')}")
        yield url, folder
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def base_url(server: tuple[str, Path]) -> str:
    return server[0]


def test_curl_style_request_without_content_type(base_url: str, reference_model: Any) -> None:
    # `curl -d '{...}'` sends application/x-www-form-urlencoded; the JSON must still be accepted.
    response = httpx.post(
        f"{base_url}/v1/embeddings",
        content=b'{"input": "hello from curl"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    vector = response.json()["data"][0]["embedding"]
    assert cosine_rows([vector], reference_model.encode(["hello from curl"])).min() >= 0.9999


def test_the_openai_client_over_http(base_url: str, reference_model: Any) -> None:
    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused")
    texts = ["first document", "second document"]
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    vectors = np.array([item.embedding for item in result.data])
    assert cosine_rows(vectors, reference_model.encode(texts)).min() >= 0.9999


def test_tei_and_health_over_http(base_url: str) -> None:
    assert len(httpx.post(f"{base_url}/embed", json={"inputs": ["a", "b"]}).json()) == 2
    health = httpx.get(f"{base_url}/health").json()
    assert health["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert health["load_strategy"] == "cpu"


def test_local_files_indexed_by_the_cli_are_found_by_the_server(server: tuple[str, Path]) -> None:
    url, folder = server
    docs = folder / "docs"
    docs.mkdir()
    (docs / "lighthouse.md").write_text(
        "# Lighthouses\n\nA lighthouse guides ships along the coast at night."
    )
    (docs / "bread.txt").write_text("Sourdough bread needs flour, water, salt and a lively starter.")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    command = [sys.executable, "-m", "embedding_engine", "--pgdata", str(folder / "pgdata")]
    indexed = subprocess.run(
        [*command, "index", str(docs)], env=env, capture_output=True, text=True, timeout=300
    )
    assert indexed.returncode == 0, indexed.stderr
    assert "2 files indexed (2 chunks), 0 unchanged, 0 failed" in indexed.stdout
    again = subprocess.run(
        [*command, "index", str(docs)], env=env, capture_output=True, text=True, timeout=300
    )
    assert "0 files indexed (0 chunks), 2 unchanged, 0 failed" in again.stdout

    hits = httpx.post(f"{url}/search", json={"query": "how do ships navigate at night?", "k": 2}).json()[
        "hits"
    ]
    assert hits[0]["source"] == (docs / "lighthouse.md").resolve().as_uri()
    assert hits[0]["score"] > hits[1]["score"]
    printed = subprocess.run(
        [*command, "search", "baking with a starter", "-k", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert printed.returncode == 0, printed.stderr
    assert "bread.txt#0" in printed.stdout


def test_a_tei_client_over_http(base_url: str, reference_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub's InferenceClient, the usual TEI client, pointed at /embed."""
    from huggingface_hub import InferenceClient, constants

    # The tests run with HF_HUB_OFFLINE=1 for the model; a client application would not.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    vector = InferenceClient(model=f"{base_url}/embed").feature_extraction("How do I avoid cold starts?")
    assert cosine_rows(vector, reference_model.encode(["How do I avoid cold starts?"])).min() >= 0.9999

"""`make run`'s server, for real: uvicorn on loopback, called over HTTP by curl-style requests and the
official openai client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from openai import OpenAI

from helpers import cosine_rows
from local_server import local_server, make_run_command


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`make run` as a process: its URL and its folder (server.log, pgdata/)."""
    folder = tmp_path_factory.mktemp("server")
    with local_server(folder) as url:
        yield url, folder


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
        [
            *command,
            "search",
            "baking with a starter",
            "-k",
            "1",
            "--mode",
            "keyword",
            "--group-by",
            "document",
        ],
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


def log_lines(folder: Path) -> list[dict[str, Any]]:
    """The server's JSON log lines (Powertools), so far."""
    text = (folder / "server.log").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_make_run_serves_with_jemalloc(base_url: str) -> None:
    """glibc's malloc fragments under varied traffic (README: Memory): `make run` preloads jemalloc."""
    assignments, _ = make_run_command(8080, Path("unused"))
    if "LD_PRELOAD" not in assignments:
        assert not os.environ.get("CI"), "CI (.ci/run) installs libjemalloc2: `make run` must find it"
        pytest.skip("jemalloc is not installed here: apt install libjemalloc2")
    allocator = httpx.get(f"{base_url}/health").json()["memory"]["allocator"]
    assert allocator == f"jemalloc ({assignments['MALLOC_CONF']})"


def test_health_answers_while_a_big_request_computes(base_url: str) -> None:
    """The model works on its own thread: the event loop still answers /health. Only the order is
    asserted (the machine is shared and noisy), with a generous ceiling on the health call."""
    # 512 passages of 256 tokens: about ten seconds of work here, at least two anywhere.
    count = 512
    words = " ".join(f"word{index}" for index in range(300))
    texts = [f"Passage {number}: {words}" for number in range(count)]
    finished: list[str] = []

    def big_request() -> None:
        response = httpx.post(f"{base_url}/v1/embeddings", json={"input": texts}, timeout=600)
        finished.append(f"big {response.status_code}")

    thread = threading.Thread(target=big_request)
    thread.start()
    time.sleep(1.0)  # the big request has arrived and is computing (for seconds)
    assert not finished, "the big request finished too soon to show anything"
    answer = httpx.get(f"{base_url}/health", timeout=60)
    finished.append(f"health {answer.status_code}")
    thread.join(timeout=600)

    assert finished == ["health 200", "big 200"]


def test_a_client_that_disconnects_mid_upload_is_not_an_error(server: tuple[str, Path]) -> None:
    url, folder = server
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n" + b'{"input": ["' + b"a" * 1000
        )
        time.sleep(0.5)  # the app is reading the body when the socket closes
    noticed: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not noticed and time.monotonic() < deadline:
        time.sleep(0.2)
        noticed = [
            line
            for line in log_lines(folder)
            if line["message"] in ("client disconnected", "unhandled error")
        ]

    assert [(line["level"], line["message"]) for line in noticed] == [("INFO", "client disconnected")]
    assert "exception" not in noticed[0]
    assert httpx.get(f"{url}/health").status_code == 200

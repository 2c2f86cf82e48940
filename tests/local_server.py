"""`make run`'s server as a test process, for the modules that call it over HTTP
(tests/test_local_server.py, tests/test_frameworks.py)."""

from __future__ import annotations

import itertools
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_run_command(port: int, pgdata: Path) -> tuple[dict[str, str], list[str]]:
    """What `make run` runs (`make -n`: the Makefile's own variables, jemalloc's LD_PRELOAD included):
    its environment assignments, and its command with the given port and database folder."""
    arguments = ["make", "--no-print-directory", "-n", "run", "HOST=127.0.0.1", f"PORT={port}"]
    # Under `make test` this is a sub-make: without MAKEFLAGS/MAKELEVEL it prints what a user's would.
    parent_make = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    env = {name: value for name, value in os.environ.items() if name not in parent_make}
    printed = subprocess.run(arguments, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    words = shlex.split(printed.strip().splitlines()[-1])
    assignments = dict(word.split("=", 1) for word in itertools.takewhile(lambda word: "=" in word, words))
    command = words[len(assignments) :]
    assert command[1:] == ["-m", "embedding_engine", "serve", "--host", "127.0.0.1", "--port", str(port)], (
        printed
    )
    return assignments, [sys.executable, *command[1:], "--pgdata", str(pgdata)]


@contextmanager
def local_server(folder: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`make run` as a process, with `extra_env` on top of its environment (e.g. API_KEYS): its URL
    while it serves. Its output goes to `folder`/server.log, its PostgreSQL to `folder`/pgdata."""
    port = free_port()
    log_path = folder / "server.log"
    assignments, command = make_run_command(port, folder / "pgdata")
    # No gateway in front of a local server: a request may compute for as long as these tests need.
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        **assignments,
        "REQUEST_TIMEOUT_SECONDS": "900",
        **(extra_env or {}),
    }
    env.pop("DATABASE_URL", None)  # as on a fresh clone: `make run` starts its own PostgreSQL
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
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
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Stopped as a service manager stops it (SIGTERM), the server stops its PostgreSQL too.
    assert not (folder / "pgdata" / "postmaster.pid").exists(), "make run left its PostgreSQL running"

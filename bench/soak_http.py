"""Memory under concurrency: `make run`'s server (uvicorn, the local PostgreSQL not needed) answering
the soak's varied requests from 8 concurrent clients, with the server's RSS read from /proc every
`every` answered requests. The allocator is the server's environment (LD_PRELOAD), as in `make run`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from bench.soak import Traffic
from embedding_engine.memory import resident_mb

REPO = Path(__file__).resolve().parents[1]
CEILING = 300.0  # seconds: a ceiling on any wait, never an expectation of speed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def soak_http(
    env: Mapping[str, str], *, requests: int, every: int, clients: int = 8, seed: int = 8, log: Path
) -> dict[str, Any]:
    """Start the local server under `env`, send `requests` requests from `clients` threads."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "embedding_engine", "serve", "--host", "127.0.0.1", "--port", str(port)]
    # A DATABASE_URL that is never used: the soak calls the embedding routes only, and the local
    # server would otherwise start its own PostgreSQL.
    server_env = {
        **env,
        "DATABASE_URL": "postgresql://unused@127.0.0.1:9/unused",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    with log.open("ab") as sink:
        server = subprocess.Popen(command, cwd=REPO, env=server_env, stdout=sink, stderr=sink)
    try:
        _wait_ready(url, server)
        traffic = Traffic(seed=seed, max_texts=64, spread="log")
        bodies = [traffic.request() for _ in range(requests)]
        lock = threading.Lock()
        statuses: Counter[int] = Counter()
        readings = [{"requests": 0, "seconds": 0.0, **resident_mb(server.pid)}]
        started = time.perf_counter()
        next_index = iter(range(requests))

        def client() -> None:
            with httpx.Client(base_url=url, timeout=CEILING) as http:
                for index in next_index:  # shared iterator: each request is sent once
                    path, body = bodies[index]
                    status = http.post(path, json=body).status_code
                    with lock:
                        statuses[status] += 1
                        done = sum(statuses.values())
                        if done % every == 0:
                            reading = {"requests": done, "seconds": round(time.perf_counter() - started, 1)}
                            readings.append({**reading, **resident_mb(server.pid)})
                            print(f"  http soak: {readings[-1]}", file=sys.stderr, flush=True)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {
            "clients": clients,
            "requests": requests,
            "statuses": {str(code): count for code, count in sorted(statuses.items())},
            "readings": readings,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + CEILING
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the local server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the local server did not become ready")


if __name__ == "__main__":
    import json

    out = Path(sys.argv[1])
    result = soak_http(
        os.environ, requests=int(sys.argv[2]), every=int(sys.argv[3]), log=out.with_suffix(".log")
    )
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

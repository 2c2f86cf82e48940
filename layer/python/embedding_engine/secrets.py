"""Secrets Manager values that may rotate, read through Powertools Parameters (boto3 honours
AWS_ENDPOINT_URL, which is how tests use moto).

A `Secret` is read at init, then again once its cached value is `max_age` seconds old
(SECRETS_MAX_AGE_SECONDS), and at once when its user finds it stale (the database refuses the password,
a presented API key matches none): such forced reads are rate-limited. Once a secret has been read, a
failed re-read (Secrets Manager unreachable, throttled, a value that cannot be used) keeps the value in
hand and logs a warning naming the secret, never its value.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from embedding_engine.errors import SettingsError
from embedding_engine.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

# A forced re-read of the database secret after PostgreSQL refused the password: at most this often.
DATABASE_REFRESH_SECONDS = 5.0


class Secret:
    """One secret's text: cached for `max_age` seconds, read again now by `refresh` (at most once per
    `min_interval` seconds; so is a retry after a failed read)."""

    def __init__(self, arn: str, *, max_age: int, min_interval: float) -> None:
        self.arn = arn
        self.max_age = max_age
        self.min_interval = min_interval
        self._provider: SecretsProvider | None = None
        self._calls = 0
        self._value: str | None = None
        self._forced_at: float | None = None  # time.monotonic() of the last forced read
        self._failed_at: float | None = None  # ... of the last failed read, until one succeeds
        self._lock = threading.Lock()

    @property
    def reads(self) -> int:
        """Calls made to Secrets Manager so far (cached values cost none)."""
        return self._calls

    def value(self) -> str:
        """The value, read again once the cached one is `max_age` seconds old. The first read raises
        `SettingsError` if it fails; later ones keep the value in hand."""
        with self._lock:
            if self._value is not None and _within(self._failed_at, self.min_interval):
                return self._value
            return self._read(force=False)

    def refresh(self) -> str:
        """The value read again now, unless a forced read happened in the last `min_interval` seconds
        (then the value in hand)."""
        with self._lock:
            if self._value is not None and (
                _within(self._forced_at, self.min_interval) or _within(self._failed_at, self.min_interval)
            ):
                return self._value
            self._forced_at = time.monotonic()
            return self._read(force=True)

    def _read(self, *, force: bool) -> str:
        try:
            if self._provider is None:
                self._provider = _secrets_provider(self._count_call)
            value = self._provider.get(self.arn, max_age=self.max_age, force_fetch=force)
            if not isinstance(value, str) or not value:
                raise SettingsError(f"The secret {self.arn} has no string value; store it as text or JSON.")
        except Exception as error:  # GetParameterError wraps whatever boto3 raised
            if self._value is None:
                if isinstance(error, SettingsError):
                    raise
                raise SettingsError(f"Cannot read the secret {self.arn}: {error}") from error
            self._failed_at = time.monotonic()
            logger.warning(
                "secret re-read failed; keeping the value in hand",
                extra={"secret_arn": self.arn, "error_type": type(error).__name__, "error": str(error)},
            )
            return self._value
        self._failed_at = None
        self._value = value
        return value

    def _count_call(self, **_: Any) -> None:
        self._calls += 1


class SecretDatabaseUrl:
    """The database URL held by a secret, for `ChunkStore` (a `UrlProvider`): the current one, or
    with `refresh=True` (after the database refused the password) the one read again now."""

    def __init__(self, secret: Secret) -> None:
        self.secret = secret
        self._text: str | None = None
        self._url: str | None = None

    def __call__(self, *, refresh: bool = False) -> str:
        text = self.secret.refresh() if refresh else self.secret.value()
        if self._url is None or text != self._text:
            try:
                url = database_url_from_secret(text)
            except SettingsError as error:
                if self._url is None:
                    raise
                logger.warning(
                    "the database secret no longer holds a usable URL; keeping the previous one",
                    extra={"secret_arn": self.secret.arn, "error": str(error)},
                )
                url = self._url
            self._text, self._url = text, url
        return self._url


def database_secret_url(arn: str, *, max_age: int) -> SecretDatabaseUrl:
    """The URL provider for `DATABASE_SECRET_ARN`, read now: a missing or unusable secret stops init."""
    provider = SecretDatabaseUrl(Secret(arn, max_age=max_age, min_interval=DATABASE_REFRESH_SECONDS))
    provider()
    return provider


def database_url_from_secret(secret: str) -> str:
    """A database URL from a secret: the URL itself, or RDS's JSON (username, password, host...).
    A host that is a Unix-socket directory (`/var/run/postgresql`) is percent-encoded, as libpq reads it."""
    if secret.startswith(("postgres://", "postgresql://")):
        return secret
    try:
        fields = json.loads(secret)
        user, password = quote(fields["username"], safe=""), quote(fields["password"], safe="")
        host, port = fields["host"], fields.get("port", 5432)
        database = fields.get("dbname") or fields.get("database") or "postgres"
        if host.startswith("/"):
            host = quote(host, safe="")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SettingsError(
            "The database secret must be a postgresql:// URL or RDS-style JSON with username, "
            "password, host, port and dbname."
        ) from None
    return f"postgresql://{user}:{password}@{host}:{port}/{database}"


def _within(moment: float | None, seconds: float) -> bool:
    return moment is not None and time.monotonic() - moment < seconds


def _secrets_provider(on_call: Callable[..., None]) -> SecretsProvider:
    """Powertools' provider (its cache, `max_age` and `force_fetch`) with a boto3 client of its own,
    made now (so with the endpoint and region of the environment now), calling `on_call` before each
    GetSecretValue. Not the module-wide provider of `get_secret`: that one keeps the client it made
    first, and one cache for every secret. Short timeouts: a re-read can happen during a request."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
    provider = SecretsProvider(boto_config=config)
    provider.client.meta.events.register("before-call.secrets-manager.GetSecretValue", on_call)
    return provider

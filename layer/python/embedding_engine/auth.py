"""Optional API keys: `Authorization: Bearer <key>`, compared in constant time. Fails closed: once keys
are configured, a configuration that yields no usable key stops init instead of opening the door.

Keys from `API_KEYS_SECRET_ARN` follow the secret's rotation: it is read again once its value is
SECRETS_MAX_AGE_SECONDS old, and at once when a presented key matches none (at most once per
`API_KEYS_REFRESH_SECONDS`, so that a client sending wrong keys cannot hammer Secrets Manager). A
re-read that yields no usable key keeps the keys in hand."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any

from embedding_engine.errors import AuthenticationError, SettingsError, json_type
from embedding_engine.observability import logger
from embedding_engine.secrets import Secret
from embedding_engine.settings import Settings

SECRET_FORMATS = '{"api_keys": ["key", ...]}, {"api_key": "key"} or plain text with comma-separated keys'
# A key that matches none makes the secret be read again, at most this often.
API_KEYS_REFRESH_SECONDS = 15.0


class ApiKeys:
    """The accepted keys: `keys`, plus those in `secret` (kept current); with none, every request is
    allowed (only `from_settings` decides that)."""

    def __init__(self, keys: Iterable[str] = (), *, secret: Secret | None = None) -> None:
        self._keys = tuple(key.encode() for key in keys)
        self.secret = secret
        self._secret_text: str | None = None  # the secret's value the keys below come from
        self._secret_keys: tuple[bytes, ...] = ()
        if secret is not None:
            self._keys_in(secret.value())

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """Keys from `API_KEYS` plus, when `API_KEYS_SECRET_ARN` is set, from Secrets Manager; open
        only when neither is configured."""
        if not settings.auth_enabled:
            return cls()
        keys = list(settings.api_keys)
        secret = None
        if settings.api_keys_secret_arn:
            secret = Secret(
                settings.api_keys_secret_arn,
                max_age=settings.secrets_max_age_seconds,
                min_interval=API_KEYS_REFRESH_SECONDS,
            )
            keys.extend(keys_from_secret(secret.value()))
        if not keys:
            raise SettingsError(
                f"API_KEYS_SECRET_ARN={settings.api_keys_secret_arn} holds no usable API key, so every "
                f"request would be refused or let through: refusing to start. Store {SECRET_FORMATS}, "
                "or unset API_KEYS_SECRET_ARN to run without authentication."
            )
        return cls(settings.api_keys, secret=secret)

    def check(self, authorization: str | None) -> None:
        """Raise `AuthenticationError` unless the header carries one of the keys."""
        if not self._keys and self.secret is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "Missing API key: send `Authorization: Bearer <key>`.", code="invalid_api_key"
            )
        candidate = token.strip().encode()
        if _matches(candidate, self._current()):
            return
        # Perhaps the secret was rotated since it was read: read it again (rate-limited), once.
        if self.secret is not None and _matches(candidate, self._current(refresh=True)):
            return
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")

    def _current(self, *, refresh: bool = False) -> tuple[bytes, ...]:
        """The keys accepted now: the secret's as of its cached value (or as read again now)."""
        if self.secret is None:
            return self._keys
        return self._keys + self._keys_in(self.secret.refresh() if refresh else self.secret.value())

    def _keys_in(self, text: str) -> tuple[bytes, ...]:
        """The keys in the secret's value `text`; if it holds none that is usable, those in hand."""
        if text != self._secret_text:
            try:
                keys = keys_from_secret(text)
                problem = "no usable API key"
            except SettingsError as error:
                keys, problem = [], str(error)
            if keys:
                self._secret_keys = tuple(key.encode() for key in keys)
            elif self._secret_text is not None:  # at init, `from_settings` has decided already
                logger.warning(
                    "the API-key secret now holds no usable key; keeping the keys in hand",
                    extra={"secret_arn": self.secret.arn if self.secret else None, "error": problem},
                )
            self._secret_text = text
        return self._secret_keys


def _matches(candidate: bytes, keys: tuple[bytes, ...]) -> bool:
    """Compare against every key, so the time taken does not tell which one came close."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key)
    return matched


def keys_from_secret(secret: str) -> list[str]:
    """The keys in a secret: `{"api_keys": [...]}`, `{"api_key": "..."}`, or plain text with
    comma-separated keys. Keys are strings, stripped of surrounding spaces; blank ones are dropped.
    Anything else where a key should be (null, a number, an array) is a `SettingsError`, never a key."""
    try:
        document: Any = json.loads(secret)
    except json.JSONDecodeError:
        document = secret
    if isinstance(document, list):
        raise SettingsError(f"The API-key secret is a JSON array; store {SECRET_FORMATS}.")
    if not isinstance(document, dict):  # plain text (a bare number or a quoted string included)
        values: list[Any] = secret.split(",")
    elif "api_keys" in document:
        if not isinstance(document["api_keys"], list):
            raise SettingsError(f'"api_keys" in the API-key secret must be an array; store {SECRET_FORMATS}.')
        values = document["api_keys"]
    elif "api_key" in document:
        values = [document["api_key"]]
    else:
        raise SettingsError(f'The API-key secret has no "api_keys" or "api_key"; store {SECRET_FORMATS}.')
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise SettingsError(
                f"Key {index} in the API-key secret is {json_type(value)}, not a string: keys are "
                f"non-empty strings. Store {SECRET_FORMATS}."
            )
    return [value.strip() for value in values if value.strip()]

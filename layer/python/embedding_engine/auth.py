"""Optional API keys: `Authorization: Bearer <key>`, compared in constant time. Fails closed: once keys
are configured, a configuration that yields no usable key stops init instead of opening the door."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any

from embedding_engine.errors import AuthenticationError, SettingsError, json_type
from embedding_engine.secrets import read_secret
from embedding_engine.settings import Settings

SECRET_FORMATS = '{"api_keys": ["key", ...]}, {"api_key": "key"} or plain text with comma-separated keys'


class ApiKeys:
    """The accepted keys; with none, every request is allowed (only `from_settings` decides that)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = tuple(key.encode() for key in keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """Keys from `API_KEYS` plus, when `API_KEYS_SECRET_ARN` is set, from Secrets Manager; open
        only when neither is configured."""
        if not settings.auth_enabled:
            return cls()
        keys = list(settings.api_keys)
        if settings.api_keys_secret_arn:
            keys.extend(keys_from_secret(read_secret(settings.api_keys_secret_arn)))
        if not keys:
            raise SettingsError(
                f"API_KEYS_SECRET_ARN={settings.api_keys_secret_arn} holds no usable API key, so every "
                f"request would be refused or let through: refusing to start. Store {SECRET_FORMATS}, "
                "or unset API_KEYS_SECRET_ARN to run without authentication."
            )
        return cls(keys)

    def check(self, authorization: str | None) -> None:
        """Raise `AuthenticationError` unless the header carries one of the keys."""
        if not self._keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "Missing API key: send `Authorization: Bearer <key>`.", code="invalid_api_key"
            )
        candidate = token.strip().encode()
        # Compare against every key, so the time taken does not tell which one came close.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")


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

"""Optional API keys: `Authorization: Bearer <key>`, compared in constant time."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable

from embedding_engine.errors import AuthenticationError, SettingsError
from embedding_engine.secrets import read_secret
from embedding_engine.settings import Settings


class ApiKeys:
    """The accepted keys; with none configured, every request is allowed."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode() for key in keys if key)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """Keys from `API_KEYS` plus, when `API_KEYS_SECRET_ARN` is set, from Secrets Manager."""
        keys = list(settings.api_keys)
        if settings.api_keys_secret_arn:
            keys.extend(keys_from_secret(read_secret(settings.api_keys_secret_arn)))
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

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
    """Accepts `{"api_keys": [...]}`, `{"api_key": "..."}`, or plain text with comma-separated keys."""
    try:
        document = json.loads(secret)
    except json.JSONDecodeError:
        return [key.strip() for key in secret.split(",") if key.strip()]
    if isinstance(document, dict):
        if isinstance(document.get("api_keys"), list):
            return [str(key) for key in document["api_keys"] if str(key).strip()]
        if isinstance(document.get("api_key"), str):
            return [document["api_key"]]
    raise SettingsError('The API-key secret must be {"api_keys": [...]}, {"api_key": "..."} or plain text.')

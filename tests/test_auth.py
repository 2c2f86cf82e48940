"""Optional API keys: off by default, Bearer keys from the environment or from Secrets Manager."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from embedding_engine.auth import ApiKeys, keys_from_secret
from embedding_engine.errors import AuthenticationError, SettingsError

REQUEST = {"input": "hello"}


def test_keys_are_off_by_default(client: Any) -> None:
    assert client.post("/v1/embeddings", json=REQUEST).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Basic czNjcmV0"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Bearer s3cret"}, 200),
        ({"Authorization": "bearer other-key"}, 200),
    ],
)
def test_a_configured_key_is_required(make_client: Any, headers: dict[str, str], status: int) -> None:
    guarded = make_client(api_keys=("s3cret", "other-key"))
    response = guarded.post("/v1/embeddings", json=REQUEST, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
    tei = guarded.post("/embed", json={"inputs": "hello"}, headers=headers)
    assert tei.status_code == status
    if status == 401:
        assert tei.json()["error_type"] == "Unauthorized"


def test_health_stays_public(make_client: Any) -> None:
    assert make_client(api_keys=("s3cret",)).get("/health").status_code == 200


def test_the_check_is_by_whole_key() -> None:
    keys = ApiKeys(["abcdef"])
    for attempt in ("abc", "abcdefg", "ABCDEF"):
        with pytest.raises(AuthenticationError):
            keys.check(f"Bearer {attempt}")
    keys.check("Bearer abcdef")


@pytest.mark.parametrize(
    ("secret", "keys"),
    [
        ('{"api_keys": ["k1", "k2"]}', ["k1", "k2"]),
        ('{"api_keys": [" k1 ", "", "k2\\n"]}', ["k1", "k2"]),  # stripped, blanks dropped
        ('{"api_key": "k1"}', ["k1"]),
        ('{"api_key": "  k1  "}', ["k1"]),
        ("k1, k2", ["k1", "k2"]),
        ("k1,,k2,", ["k1", "k2"]),
        ("12345", ["12345"]),  # a bare number is plain text, not JSON
    ],
)
def test_secret_formats(secret: str, keys: list[str]) -> None:
    assert keys_from_secret(secret) == keys


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ('{"keys": 1}', 'no "api_keys" or "api_key"'),
        ('{"api_keys": [null, 0]}', "Key 0 in the API-key secret is null"),
        ('{"api_keys": ["k1", 0]}', "Key 1 in the API-key secret is a number"),
        ('{"api_keys": "k1"}', "must be an array"),
        ('{"api_key": null}', "is null"),
        ('["k1"]', "JSON array"),
    ],
)
def test_a_key_that_is_not_a_string_is_a_settings_error(secret: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        keys_from_secret(secret)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ('{"api_keys": []}', "holds no usable API key"),
        ('{"api_key": ""}', "holds no usable API key"),
        (" , ", "holds no usable API key"),
        ('{"api_keys": ["  "]}', "holds no usable API key"),
        ('{"api_keys": [null, 0]}', "not a string"),
        ('{"api_keys": [null]}', "not a string"),
    ],
)
def test_a_secret_without_a_usable_key_fails_init_instead_of_opening(
    make_client: Any, secrets_manager: Any, secret: str, message: str
) -> None:
    arn = secrets_manager.create_secret(Name=f"embeddings/{uuid.uuid4()}", SecretString=secret)["ARN"]
    with pytest.raises(SettingsError, match=message):
        make_client(api_keys_secret_arn=arn)


def test_keys_with_spaces_in_the_secret_match_the_bearer_token(
    make_client: Any, secrets_manager: Any
) -> None:
    secret = json.dumps({"api_keys": ["  spaced-key  "]})
    arn = secrets_manager.create_secret(Name=f"embeddings/{uuid.uuid4()}", SecretString=secret)["ARN"]
    guarded = make_client(api_keys_secret_arn=arn)
    authorized = {"Authorization": "Bearer spaced-key"}
    assert guarded.post("/v1/embeddings", json=REQUEST, headers=authorized).status_code == 200
    assert guarded.post("/v1/embeddings", json=REQUEST).status_code == 401


def test_an_empty_key_list_in_code_is_open_only_when_nothing_is_configured() -> None:
    ApiKeys().check(None)  # open: nothing configured
    with pytest.raises(AuthenticationError):
        ApiKeys(["k"]).check("Bearer None")


@pytest.fixture
def secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real Secrets Manager API (moto in server mode), reached through AWS_ENDPOINT_URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield boto3.client("secretsmanager")
    finally:
        server.stop()


def test_keys_from_secrets_manager(make_client: Any, secrets_manager: Any) -> None:
    arn = secrets_manager.create_secret(
        Name="embeddings/api-keys", SecretString=json.dumps({"api_keys": ["from-secret"]})
    )["ARN"]
    guarded = make_client(api_keys_secret_arn=arn)
    assert guarded.post("/v1/embeddings", json=REQUEST).status_code == 401
    authorized = {"Authorization": "Bearer from-secret"}
    assert guarded.post("/v1/embeddings", json=REQUEST, headers=authorized).status_code == 200

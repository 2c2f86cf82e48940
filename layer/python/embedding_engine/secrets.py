"""Secrets Manager, read once at init (boto3 honours AWS_ENDPOINT_URL, which is how tests use moto)."""

from __future__ import annotations

import json
from urllib.parse import quote

from embedding_engine.errors import SettingsError


def read_secret(secret_arn: str) -> str:
    """The secret's string value."""
    import boto3

    response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    secret = response.get("SecretString")
    if not secret:
        raise SettingsError(f"The secret {secret_arn} has no string value; store it as text or JSON.")
    return str(secret)


def database_url_from_secret(secret: str) -> str:
    """A database URL from a secret: the URL itself, or RDS's JSON (username, password, host...)."""
    if secret.startswith(("postgres://", "postgresql://")):
        return secret
    try:
        fields = json.loads(secret)
        user, password = quote(fields["username"], safe=""), quote(fields["password"], safe="")
        host, port = fields["host"], fields.get("port", 5432)
        database = fields.get("dbname") or fields.get("database") or "postgres"
    except (ValueError, KeyError, TypeError):
        raise SettingsError(
            "The database secret must be a postgresql:// URL or RDS-style JSON with username, "
            "password, host, port and dbname."
        ) from None
    return f"postgresql://{user}:{password}@{host}:{port}/{database}"

"""Secrets Manager, read once at init (boto3 honours AWS_ENDPOINT_URL, which is how tests use moto)."""

from __future__ import annotations

from embedding_engine.errors import SettingsError


def read_secret(secret_arn: str) -> str:
    """The secret's string value."""
    import boto3

    response = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    secret = response.get("SecretString")
    if not secret:
        raise SettingsError(f"The secret {secret_arn} has no string value; store it as text or JSON.")
    return str(secret)

"""The store's connections, with credentials that may rotate: a fixed URL, or a secret's (a
`UrlProvider`), read again once when PostgreSQL refuses the login."""

from __future__ import annotations

import re
from typing import Any, Protocol

import psycopg

from embedding_engine.observability import logger

# PostgreSQL refusing a login: SQLSTATE 28P01 (invalid_password) or 28000
# (invalid_authorization_specification). libpq gives psycopg no SQLSTATE for a connection that failed
# (`sqlstate` is None), so the server's messages for those codes are matched too (English, as on RDS).
REFUSED_LOGIN_SQLSTATES = frozenset({"28P01", "28000"})
REFUSED_LOGIN = re.compile(
    r'authentication failed for user|no pg_hba\.conf entry|pg_hba\.conf rejects|role ".*" does not exist'
)


class UrlProvider(Protocol):
    """Where the database is: called for each new connection; with `refresh=True` after the database
    refused the credentials, to read them again now (a rotated password)."""

    def __call__(self, *, refresh: bool = False) -> str: ...


def connect(url: str | UrlProvider, *, timeout: int) -> psycopg.Connection[Any]:
    """An autocommit connection to `url`. With a provider, a login refused for its credentials is
    tried once more with the credentials read again, if they changed."""

    def open_url(target: str) -> psycopg.Connection[Any]:
        return psycopg.connect(target, autocommit=True, connect_timeout=timeout)

    if isinstance(url, str):
        return open_url(url)
    current = url()
    try:
        return open_url(current)
    except psycopg.OperationalError as exc:
        if not refused_login(exc):
            raise
        fresh = url(refresh=True)
        if fresh == current:  # not rotated (or read again too recently): the same refusal
            raise
        logger.warning("the database refused the credentials; connecting with those read again")
    return open_url(fresh)


def refused_login(error: psycopg.OperationalError) -> bool:
    """True when PostgreSQL refused the login (wrong password or user), not for other failures."""
    return error.sqlstate in REFUSED_LOGIN_SQLSTATES or REFUSED_LOGIN.search(str(error)) is not None

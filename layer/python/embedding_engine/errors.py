"""Typed errors. Each `ServiceError` carries its HTTP status and its type name in both API dialects.

This module is the one place where an error meets its HTTP status; the app only renders the shape.
"""

from __future__ import annotations

from typing import Any, ClassVar

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number"}


def json_type(value: Any) -> str:
    """What JSON calls the type of a parsed value (null, an object, an array, a number...): messages
    name types as the caller wrote them, never as Python does."""
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_TYPES.items() if isinstance(value, kind)), "a number")


class ServiceError(Exception):
    """An error whose message is safe to return to the caller."""

    status_code: ClassVar[int] = 500
    openai_type: ClassVar[str] = "server_error"
    tei_type: ClassVar[str] = "Backend"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class MalformedRequestError(ServiceError):
    """The body is not JSON, or not an object."""

    status_code = 400
    openai_type = "invalid_request_error"
    tei_type = "Validation"


class InvalidInputError(ServiceError):
    """Well-formed JSON with a value the service cannot accept (empty text, too many inputs...)."""

    status_code = 400
    openai_type = "invalid_request_error"
    tei_type = "Validation"


class SchemaError(ServiceError):
    """A field is missing, unknown or of the wrong type."""

    status_code = 422
    openai_type = "invalid_request_error"
    tei_type = "Validation"


class AuthenticationError(ServiceError):
    status_code = 401
    openai_type = "invalid_request_error"
    tei_type = "Unauthorized"


class RouteNotFoundError(ServiceError):
    status_code = 404
    openai_type = "invalid_request_error"
    tei_type = "NotFound"


class MethodNotAllowedError(ServiceError):
    status_code = 405
    openai_type = "invalid_request_error"
    tei_type = "Validation"


class PayloadTooLargeError(ServiceError):
    """A request or response beyond what one synchronous Lambda invocation can carry."""

    status_code = 413
    openai_type = "invalid_request_error"
    tei_type = "Validation"


class InputTooLongError(PayloadTooLargeError):
    """An input over the model's maximum sequence length while truncation is off (as TEI)."""


class ServiceUnavailableError(ServiceError):
    status_code = 503
    openai_type = "server_error"
    tei_type = "Unhealthy"


class StoreUnavailableError(ServiceUnavailableError):
    """The document store is not configured, or cannot be reached right now."""

    @classmethod
    def not_configured(cls, *, otherwise: str) -> StoreUnavailableError:
        """For work that needs the document store when none is configured."""
        return cls(f"No document store is configured: set DATABASE_URL or DATABASE_SECRET_ARN, {otherwise}.")


class DeadlineExceededError(ServiceUnavailableError):
    """The work left cannot finish before the invocation's deadline: stopped before being killed."""


class ModelCheckError(Exception):
    """A loaded model failed its self-check (meta tensors, wrong dimension, non-finite output): the
    loader tries its next strategy."""


class SettingsError(Exception):
    """The environment holds a value the service cannot start with."""


class ModelLoadError(Exception):
    """No load strategy produced a model that passed its self-check: init must fail."""


class StoreMismatchError(Exception):
    """The database holds vectors of another model or dimension: mixing them would corrupt search."""


class IndexNotDroppedError(Exception):
    """`drop-index` refused: no index of that name, or one a function is still using."""


class ObjectSkippedError(Exception):
    """An S3 object deliberately not indexed (gone, or over the size cap): acknowledged, not retried."""


class UnsupportedEventError(Exception):
    """An invocation event that no route of the handler accepts."""


class DocumentError(Exception):
    """A document that can never be indexed as it is; retrying the same bytes will not help."""


class UnsupportedDocumentError(DocumentError):
    """A content type or extension the extractor does not read."""


class CorruptDocumentError(DocumentError):
    """A document of a supported type whose bytes cannot be read (a broken PDF, say)."""


class DocumentTooLargeError(ObjectSkippedError, DocumentError):
    """A document over MAX_DOCUMENT_CHARS or MAX_DOCUMENT_CHUNKS, or beyond the PDF reader's limits:
    skipped like an object over MAX_DOCUMENT_BYTES (acknowledged, its older version removed)."""


class NotTextDocumentError(DocumentError):
    """Bytes whose decoded or extracted text is mostly unprintable characters: binary, not text."""


class MalformedNotificationError(ValueError):
    """An SQS message or event that is not an S3 notification, or an S3 record without its fields."""

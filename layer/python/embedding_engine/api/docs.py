"""`GET /openapi.json` and `GET /docs`: the API's description, and Swagger UI rendering it from the
files vendored in `swagger_ui/` (never a CDN: a Lambda function often has no internet). The page has
no inline script and loads nothing from elsewhere; its Content-Security-Policy says so to the browser.
Asset URLs carry a hash of the asset, so browsers may keep them for a year."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from embedding_engine.api.http import RESPONSE_LIMIT_KEY
from embedding_engine.api.openapi import openapi_document
from embedding_engine.api.routes import ROUTES
from embedding_engine.errors import PayloadTooLargeError, RouteNotFoundError
from embedding_engine.settings import Settings

JS, CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
# The files under /docs/, and their content types: Swagger UI's own (swagger_ui/), and ours.
ASSET_TYPES = {
    "swagger-ui-bundle.js": JS,
    "swagger-ui.css": CSS,
    "favicon-32x32.png": "image/png",
    "swagger-init.js": JS,
}
# Relative URLs throughout, so that the page also works under a path prefix (an API stage, a proxy).
INIT_JS = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Embeddings API</title>
<link rel="stylesheet" href="docs/swagger-ui.css?v={swagger-ui.css}">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png?v={favicon-32x32.png}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js?v={swagger-ui-bundle.js}"></script>
<script src="docs/swagger-init.js?v={swagger-init.js}"></script>
</body>
</html>
"""
# Swagger UI's stylesheet embeds its icons as data: URLs; "Try it out" calls this origin.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
NO_SNIFF = {"X-Content-Type-Options": "nosniff"}
IMMUTABLE = {**NO_SNIFF, "Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # a hash of the body, for cache-busting URLs

    @property
    def text(self) -> bool:
        return not self.media_type.startswith("image/")

    @property
    def gzipped(self) -> bytes:
        return _gzipped(self.body)


@cache
def asset(name: str) -> Asset:
    """An asset's bytes (read once per process)."""
    if name == "swagger-init.js":
        body = INIT_JS.encode()
    else:
        body = files("embedding_engine.api").joinpath("swagger_ui", name).read_bytes()
    return Asset(body, ASSET_TYPES[name], hashlib.sha256(body).hexdigest()[:16])


@cache
def _gzipped(body: bytes) -> bytes:
    return gzip.compress(body, mtime=0)


@cache
def page() -> bytes:
    html = PAGE
    for name in ASSET_TYPES:
        html = html.replace("{" + name + "}", asset(name).version)
    return html.encode()


def endpoints(settings: Settings, request_models: dict[str, type[BaseModel]]) -> dict[str, Endpoint]:
    """The endpoints of the routes `openapi`, `docs` and `docs_asset`."""

    @cache
    def description() -> bytes:  # built on first request, once per app
        return orjson.dumps(openapi_document(ROUTES, settings, request_models, ASSET_TYPES))

    async def openapi_json(request: Request) -> Response:
        return Response(description(), media_type="application/json", headers={"Cache-Control": "no-cache"})

    async def docs_page(request: Request) -> Response:
        headers = {**NO_SNIFF, "Cache-Control": "no-cache", "Content-Security-Policy": PAGE_POLICY}
        return Response(page(), media_type="text/html; charset=utf-8", headers=headers)

    async def docs_asset(request: Request) -> Response:
        name = request.path_params["asset"]
        if name not in ASSET_TYPES:
            raise RouteNotFoundError(
                f"No asset {name} under /docs; there are {', '.join(ASSET_TYPES)}.", code="asset_not_found"
            )
        return asset_response(asset(name), request, settings)

    return {"openapi": openapi_json, "docs": docs_page, "docs_asset": docs_asset}


def asset_response(found: Asset, request: Request, settings: Settings) -> Response:
    """The asset, gzipped when the client takes it (a 1.7 MB bundle then fits an ALB's 1 MB)."""
    headers: dict[str, Any] = dict(IMMUTABLE)
    body = found.body
    if found.text and accepts_gzip(request.headers.get("accept-encoding", "")):
        body, headers["Content-Encoding"] = found.gzipped, "gzip"
    # What the Lambda response carries: text as it is, other bytes in base64.
    carried = len(body) if "Content-Encoding" not in headers and found.text else 4 * -(-len(body) // 3)
    limit = min(
        settings.max_response_bytes, request.scope.get(RESPONSE_LIMIT_KEY, settings.max_response_bytes)
    )
    if carried > limit:
        raise PayloadTooLargeError(
            f"{request.url.path} is {carried} bytes as sent, over the {limit} bytes this response may carry; "
            "ask for it with `Accept-Encoding: gzip`.",
            code="response_too_large",
        )
    return Response(body, media_type=found.media_type, headers=headers)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (`gzip`, or `*`, without `q=0`)."""
    for entry in accept_encoding.lower().split(","):
        coding, _, parameters = entry.partition(";")
        quality = parameters.strip().removeprefix("q=").strip() or "1"
        if coding.strip() in ("gzip", "*"):
            try:
                return float(quality) > 0
            except ValueError:
                return False
    return False

"""The HTTP API in one table: each route's path, method, error dialect, and whether it needs a key."""

from __future__ import annotations

from dataclasses import dataclass

from embedding_engine.api.http import Dialect
from embedding_engine.settings import Settings


@dataclass(frozen=True)
class RouteSpec:
    endpoint: str  # which endpoint serves it (see `app.create_app`)
    path: str
    method: str
    dialect: Dialect = Dialect.OPENAI
    public: bool = False  # no API key needed
    docs: bool = False  # the API's description: no API key needed when DOCS_PUBLIC is on

    def open_to_all(self, settings: Settings) -> bool:
        """Whether the route is served without an API key."""
        return self.public or (self.docs and settings.docs_open)


ROUTES = (
    RouteSpec("embeddings", "/v1/embeddings", "POST"),
    RouteSpec("embeddings", "/embeddings", "POST"),  # OpenAI clients with base_url ".../v1"
    RouteSpec("embed", "/embed", "POST", Dialect.TEI),
    RouteSpec("search", "/search", "POST"),
    RouteSpec("health", "/health", "GET", public=True),
    RouteSpec("openapi", "/openapi.json", "GET", docs=True),
    RouteSpec("docs", "/docs", "GET", docs=True),  # Swagger UI, and its files below
    RouteSpec("docs_asset", "/docs/{asset}", "GET", docs=True),
)
ROUTES_HELP = (
    "Routes: POST /v1/embeddings, POST /embed, POST /search, GET /health; "
    "GET /openapi.json describes them, GET /docs shows it."
)


def route_at(path: str) -> RouteSpec | None:
    """The route at `path`, trailing slashes aside (a 404 there still speaks the route's dialect)."""
    return next((route for route in ROUTES if route.path == path.rstrip("/")), None)


def dialect_of(path: str) -> Dialect:
    """The error dialect at `path`: its route's, else OpenAI's."""
    route = route_at(path)
    return route.dialect if route is not None else Dialect.OPENAI

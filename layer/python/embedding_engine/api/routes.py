"""The HTTP API in one table: each route's path, method, error dialect, and whether it needs a key."""

from __future__ import annotations

from dataclasses import dataclass

from embedding_engine.api.http import Dialect


@dataclass(frozen=True)
class RouteSpec:
    endpoint: str  # which endpoint serves it (see `app.create_app`)
    path: str
    method: str
    dialect: Dialect = Dialect.OPENAI
    public: bool = False  # no API key needed


ROUTES = (
    RouteSpec("embeddings", "/v1/embeddings", "POST"),
    RouteSpec("embeddings", "/embeddings", "POST"),  # OpenAI clients with base_url ".../v1"
    RouteSpec("embed", "/embed", "POST", Dialect.TEI),
    RouteSpec("search", "/search", "POST"),
    RouteSpec("health", "/health", "GET", public=True),
)
ROUTES_HELP = "Routes: POST /v1/embeddings, POST /embed, POST /search, GET /health."


def route_at(path: str) -> RouteSpec | None:
    """The route at `path`, trailing slashes aside (a 404 there still speaks the route's dialect)."""
    return next((route for route in ROUTES if route.path == path.rstrip("/")), None)


def dialect_of(path: str) -> Dialect:
    """The error dialect at `path`: its route's, else OpenAI's."""
    route = route_at(path)
    return route.dialect if route is not None else Dialect.OPENAI

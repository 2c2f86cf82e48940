"""GET /docs and its files, and who may read the API's description: DOCS_PUBLIC with and without API
keys; the page's sources, types, caching and gzip; the vendored Swagger UI; through Lambda."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from importlib.resources import files
from typing import Any

import pytest
from starlette.testclient import TestClient

from embedding_engine.api.docs import ASSET_TYPES, accepts_gzip, asset
from embedding_engine.errors import SettingsError
from embedding_engine.settings import Settings
from helpers import FakeLambdaContext, load_event
from test_openapi import KEY, described

DOCS_PATHS = ("/openapi.json", "/docs", "/docs/swagger-ui.css")


@pytest.mark.parametrize(
    ("environ", "docs_open"),
    [
        ({}, True),
        ({"API_KEYS": "k"}, False),
        ({"API_KEYS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys"}, False),
        ({"API_KEYS": "k", "DOCS_PUBLIC": "true"}, True),
        ({"DOCS_PUBLIC": "false"}, False),
    ],
)
def test_docs_public_defaults_to_off_once_api_keys_are_configured(
    environ: dict[str, str], docs_open: bool
) -> None:
    assert Settings.from_env(environ).docs_open is docs_open


def test_docs_public_must_be_a_boolean() -> None:
    with pytest.raises(SettingsError, match="DOCS_PUBLIC='sometimes' is not a boolean"):
        Settings.from_env({"DOCS_PUBLIC": "sometimes"})


@pytest.mark.parametrize("docs_public", [None, True, False])
def test_with_api_keys_the_docs_need_one_unless_docs_public(
    make_client: Any, docs_public: bool | None
) -> None:
    client = make_client(api_keys=("s3cret",), docs_public=docs_public)
    for path in DOCS_PATHS:
        response = client.get(path)
        assert response.status_code == (200 if docs_public else 401), path
        if not docs_public:
            assert response.json()["error"]["code"] == "invalid_api_key"
            assert client.get(path, headers=KEY).status_code == 200
    assert client.post("/v1/embeddings", json={"input": "hi"}).status_code == 401  # the API stays closed
    docs = described(client, **KEY)["paths"]["/docs"]["get"]
    assert ("security" in docs, "401" in docs["responses"]) == (not docs_public, not docs_public)


def test_without_api_keys_the_docs_are_open(make_client: Any) -> None:
    for docs_public in (None, False):  # False: no key to ask for
        client = make_client(docs_public=docs_public)
        assert [client.get(path).status_code for path in DOCS_PATHS] == [200] * len(DOCS_PATHS)


def test_the_page_loads_only_versioned_files_of_this_server_and_no_inline_script(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    assert {"default-src 'none'", "script-src 'self'", "connect-src 'self'"} <= set(policy.split("; "))
    html = response.text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 2
    assert all(' src="' in attributes and not body.strip() for attributes, body in scripts)
    assert "<style" not in html and not re.search(r"\s(style|on[a-z]+)=", html)
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(urls) == 4
    for link in urls:
        name, _, version = link.removeprefix("docs/").partition("?v=")
        assert link.startswith("docs/") and name in ASSET_TYPES, link  # relative: works under a prefix
        body = client.get(f"/docs/{name}").content
        assert version == hashlib.sha256(body).hexdigest()[:16]


def test_the_files_are_served_with_their_types_gzipped_and_cached_for_a_year(client: TestClient) -> None:
    for name, media_type in ASSET_TYPES.items():
        response = client.get(f"/docs/{name}")  # httpx asks for gzip and decodes it
        assert response.status_code == 200
        assert response.headers["content-type"] == media_type
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == asset(name).body
        assert response.headers.get("content-encoding") == (None if name.endswith(".png") else "gzip")
    plain = client.get("/docs/swagger-ui.css", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == asset("swagger-ui.css").body


@pytest.mark.parametrize(
    ("header", "gzip_taken"),
    [
        ("gzip, deflate, br", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0, *", False),
        ("gzip;q=bad", False),
        ("identity", False),
        ("", False),
    ],
)
def test_gzip_is_sent_to_clients_that_take_it(header: str, gzip_taken: bool) -> None:
    assert accepts_gzip(header) is gzip_taken


def test_the_vendored_files_are_the_recorded_release_with_its_license() -> None:
    folder = files("embedding_engine.api").joinpath("swagger_ui")
    assert "Apache License" in folder.joinpath("LICENSE").read_text(encoding="utf-8")
    source = folder.joinpath("SOURCE").read_text(encoding="utf-8")
    recorded = dict(
        line.split()[::-1] for line in source.splitlines() if re.fullmatch(r"  [0-9a-f]{64}  \S+", line)
    )
    on_disk = {item.name for item in folder.iterdir()} - {"SOURCE"}
    assert set(recorded) == on_disk and {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"} <= on_disk
    for name, digest in recorded.items():
        assert hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest() == digest, name
    assert sum(len(folder.joinpath(name).read_bytes()) for name in on_disk) < 2_500_000  # no source maps


def test_through_lambda_the_page_is_text_and_the_bundle_fits_an_alb_gzipped(handler_module: Any) -> None:
    page = load_event("apigw_http_v2_health")
    page["rawPath"] = page["requestContext"]["http"]["path"] = "/docs"
    page["routeKey"] = page["requestContext"]["routeKey"] = "GET /docs"
    response = handler_module.lambda_handler(page, FakeLambdaContext())
    assert (response["statusCode"], response["isBase64Encoded"]) == (200, False)
    assert response["body"].startswith("<!DOCTYPE html>")

    bundle = load_event("alb")
    bundle |= {
        "httpMethod": "GET",
        "path": "/docs/swagger-ui-bundle.js",
        "body": "",
        "isBase64Encoded": False,
    }
    bundle["headers"] = {**bundle["headers"], "content-length": "0", "accept-encoding": "gzip, deflate"}
    response = handler_module.lambda_handler(bundle, FakeLambdaContext())
    assert (response["statusCode"], response["isBase64Encoded"]) == (200, True)
    assert len(json.dumps(response)) < 1024 * 1024  # an ALB's limit for a Lambda target's response
    assert gzip.decompress(base64.b64decode(response["body"])) == asset("swagger-ui-bundle.js").body

    bundle["headers"]["accept-encoding"] = "identity"  # 1.7 MB as it is: over the ALB's limit
    response = handler_module.lambda_handler(bundle, FakeLambdaContext())
    assert response["statusCode"] == 413
    assert "Accept-Encoding: gzip" in json.loads(response["body"])["error"]["message"]

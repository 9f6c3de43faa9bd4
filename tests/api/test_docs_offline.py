"""/docs and /redoc work without internet: every script, stylesheet and icon they load comes
from the API itself (fastapi-offline's files), and each answers with a real file of the right type."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx

from api.api_keys import hash_key
from tests.api.conftest import serve_api
from worker.settings import Settings

ASSETS = tuple(
    f"/docs-assets/{name}" for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
)


class _Assets(HTMLParser):
    """The URLs a page loads: <script src>, <link href> (stylesheet and icon)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: dict[str, str] = {}  # rel -> href

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"] or "")
        if tag == "link" and attributes.get("href"):
            self.links[attributes.get("rel") or ""] = attributes["href"] or ""


def _assets(html: str) -> _Assets:
    parser = _Assets()
    parser.feed(html)
    return parser


def _same_origin_path(url: str) -> str:
    parts = urlsplit(url)
    assert not parts.scheme and not parts.netloc, f"{url} is not on this API"
    assert url.startswith("/"), url
    return url


async def _fetch_asset(http: httpx.AsyncClient, url: str, content_type: str, min_bytes: int) -> None:
    response = await http.get(_same_origin_path(url))
    assert response.status_code == 200, (url, response.status_code)
    assert content_type in response.headers["content-type"], (url, response.headers["content-type"])
    assert len(response.content) > min_bytes, (url, len(response.content))


async def test_docs_page_and_its_assets_are_served_by_the_api() -> None:
    async with serve_api(Settings()) as (http, _):
        docs = await http.get("/docs")
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
        assert "http://" not in docs.text and "https://" not in docs.text
        page = _assets(docs.text)
        assert page.scripts == ["/docs-assets/swagger-ui-bundle.js"]
        assert set(page.links) == {"stylesheet", "shortcut icon"}
        assert "url: '/openapi.json'" in docs.text
        await _fetch_asset(http, page.scripts[0], "javascript", 1_000_000)
        # Swagger UI 5: the first that renders OpenAPI 3.1, which FastAPI writes
        assert b"SwaggerUIBundle" in (await http.get(page.scripts[0])).content
        await _fetch_asset(http, page.links["stylesheet"], "text/css", 100_000)
        await _fetch_asset(http, page.links["shortcut icon"], "image/png", 1_000)
        spec = (await http.get("/openapi.json")).json()
        assert spec["openapi"].startswith("3.1")
        redirect = await http.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200 and "swaggerUIRedirectOauth2" in redirect.text
        assert (await http.get("/docs-assets/nothing.js")).status_code == 404


async def test_redoc_page_and_its_assets_are_served_by_the_api() -> None:
    async with serve_api(Settings()) as (http, _):
        redoc = await http.get("/redoc")
        assert redoc.status_code == 200 and redoc.headers["content-type"].startswith("text/html")
        assert "http://" not in redoc.text and "https://" not in redoc.text  # no Google Fonts either
        page = _assets(redoc.text)
        assert page.scripts == ["/docs-assets/redoc.standalone.js"]
        assert set(page.links) == {"shortcut icon"}
        assert '<redoc spec-url="/openapi.json">' in redoc.text
        await _fetch_asset(http, page.scripts[0], "javascript", 500_000)
        await _fetch_asset(http, page.links["shortcut icon"], "image/png", 1_000)


async def test_docs_need_no_key_like_openapi_json() -> None:
    keys = {"keys": [{"name": "ci", "sha256": hash_key("orch_test"), "roles": ["run"]}]}
    async with serve_api(Settings(api_keys=json.dumps(keys))) as (http, _):
        assert (await http.get("/v1/tools")).status_code == 401
        for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", *ASSETS):
            assert (await http.get(path)).status_code == 200, path


async def test_docs_stay_out_of_the_openapi_spec() -> None:
    async with serve_api(Settings()) as (http, _):
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]

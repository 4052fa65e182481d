"""API documentation served by the API itself: Swagger UI at /docs and ReDoc at /redoc, with
their JavaScript and CSS from the fastapi-offline package (nothing from a CDN, so the pages
render on a machine without internet), and an OpenAPI document that declares the bearer scheme
so Swagger's "Authorize" / "Try it out" sends the token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
STATIC = "/docs-static"
SCHEME = "bearerAuth"
# Paths anyone may call (see service/api/auth.py): no lock in the docs.
PUBLIC = ("/v1/schema", "/v1/keys", "/v1/metrics", "/healthz", "/badge/", "/ui")


def install(app: FastAPI) -> None:
    """Mount the assets and the two pages; the app must be built with docs_url=None and
    redoc_url=None."""
    app.mount(STATIC, StaticFiles(directory=ASSETS), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json",
                              title=f"{app.title} API",
                              redoc_js_url=f"{STATIC}/redoc.standalone.js",
                              redoc_favicon_url=f"{STATIC}/favicon.png", with_google_fonts=False)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_bearer(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_bearer(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare ``Authorization: Bearer <token>`` and require it where the API does."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http", "scheme": "bearer",
        "description": "a token from `robustgate token create --tenant NAME`"}
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            if not isinstance(op, dict):
                continue
            public = path.startswith(PUBLIC) or (
                path.startswith("/v1/standards") and method == "get")
            # Reading standards is public, but a token adds the tenant's own: optional.
            optional = path.startswith("/v1/standards") and method == "get"
            op["security"] = [{SCHEME: []}, {}] if optional else [] if public \
                else [{SCHEME: []}]
    return schema

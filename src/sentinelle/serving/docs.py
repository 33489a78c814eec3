"""The API's documentation pages, served from files shipped in the package (no CDN).

    GET /docs                Swagger UI (swagger-ui-dist)
    GET /redoc               ReDoc (redoc's standalone bundle)
    GET /docs-assets/NAME    their scripts and style sheet (``docs/``, with their licences)

FastAPI's own ``/docs`` and ``/redoc`` load these from a CDN, so a machine without internet
shows a blank page; the app is made with ``docs_url=None, redoc_url=None`` and this module adds
the same pages with local URLs. The files come from the npm registry
(``python -m sentinelle_tools.vendor``; versions in ``vendor/manifest.json``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["install"]

ASSETS = "/docs-assets"
FAVICON = "/page/favicon.svg"  # the page's icon (serving/page/)


def install(app: FastAPI) -> None:
    """Add /docs, /redoc and their files to ``app`` (made without FastAPI's own)."""
    openapi = app.openapi_url or "/openapi.json"
    app.mount(ASSETS, StaticFiles(packages=[("sentinelle.serving", "docs")]), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=FAVICON,
            # No badge from the online validator (validator.swagger.io).
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        )

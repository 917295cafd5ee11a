"""The dashboard's files: one page, its script and its style sheet, served as they are in the
package (no build step). Everything the page shows it reads from the control routes, which the
admin token guards; the files themselves hold no data, so they are served to anyone.

A strict Content-Security-Policy goes with them: scripts and styles only from these files, no
inline script, so even a value that slipped past the page's escaping could not run.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

from emulator.errors import RouteNotFound

#: the files the dashboard is made of, and their media types
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return files("emulator").joinpath("ui", name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_read(name), media_type=ASSETS[name], headers=HEADERS)


async def dashboard(request: Request) -> Response:
    return _serve("index.html")


async def dashboard_asset(request: Request) -> Response:
    name = request.path_params["asset"]
    if name not in ASSETS:
        raise RouteNotFound(f"No route GET {request.url.path}.")
    return _serve(name)

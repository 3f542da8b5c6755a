"""The web console at /console/: static HTML, CSS and JavaScript modules shipped inside the
package, served by `reactor serve` on the API's own origin.

The pages carry no data and no credentials: the browser signs in through /auth/v1 and calls
the same /jobs/v1 and /functions/v1 routes with the same roles as any client, so the console
can do nothing its user could not do with curl. The files are public (like /healthz); every
answer here forbids framing and allows scripts, styles and connections to this origin only,
so even a rendering bug cannot load or send anything elsewhere.

The set of files is read once, when the app is built: a request names one of them or gets a
404, whatever it puts in the path (no path is ever joined onto the file system).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

__all__ = ["PREFIX", "add_console", "is_console"]

PREFIX = "/console"
STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # index.html is small and names its modules without versions: always revalidate.
    "Cache-Control": "no-cache",
}
_FILES = web.AppKey("console_files", dict[str, tuple[bytes, str]])


def is_console(request: web.Request) -> bool:
    """GET/HEAD of the console's files: public, like /healthz (they hold no data)."""
    path = request.path
    return request.method in ("GET", "HEAD") and (path == PREFIX or path.startswith(PREFIX + "/"))


def load_files(root: Path = STATIC) -> dict[str, tuple[bytes, str]]:
    """Relative path → (bytes, content type) of every file under `root`."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
            files[path.relative_to(root).as_posix()] = (
                path.read_bytes(),
                kind or "application/octet-stream",
            )
    return files


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(PREFIX + "/")


async def serve_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("path") or "index.html"
    found = request.app[_FILES].get(name)
    if found is None:
        raise web.HTTPNotFound(text=f"no console file {name!r}")
    body, kind = found
    response = web.Response(body=body, headers=HEADERS)
    response.content_type, _, charset = kind.partition("; charset=")
    if charset:
        response.charset = charset
    return response


def add_console(app: web.Application) -> None:
    """Register GET /console (a redirect), /console/ and /console/{path}."""
    app[_FILES] = load_files()
    app.router.add_get(PREFIX, redirect)
    app.router.add_get(PREFIX + "/", serve_file)
    app.router.add_get(PREFIX + "/{path:.+}", serve_file)

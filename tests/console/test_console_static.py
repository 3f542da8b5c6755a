"""The console's files as served (no browser needed): public like /healthz, behind a strict
Content-Security-Policy, only the files the package ships (nothing else reachable through
the prefix), while the API the pages call still wants credentials. And the scripts
themselves: every module they import is served, and none of them parses data as HTML."""

from __future__ import annotations

import re

import pytest

from reactor_jobs.http.console import STATIC, load_files
from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]


async def test_the_console_is_served_without_credentials_behind_a_strict_policy(api: Api) -> None:
    bare = await api.session.get(api.base + "/console", allow_redirects=False)
    assert (bare.status, bare.headers["Location"]) == (301, "/console/")
    page = await api.call("GET", "/console/", as_=None)
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/console/app.js">' in page.text
    policy = page.headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'"):  # fmt: skip
        assert directive in policy
    assert "unsafe" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = await api.call("GET", "/console/pages/run.js", as_=None)
    assert (script.status, script.headers["Content-Type"]) == (
        200, "text/javascript; charset=utf-8",
    )  # fmt: skip
    css = await api.call("GET", "/console/style.css", as_=None)
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    [
        "/console/nothing.js",
        "/console/../pyproject.toml",
        "/console/%2e%2e/__init__.py",
        "/console/..%2f__init__.py",
        "/console/pages/../../__init__.py",
        "/console//etc/passwd",
        "/console/pages",
    ],
)
async def test_only_the_shipped_files_are_reachable(api: Api, path: str) -> None:
    reply = await api.call("GET", path, as_=None)
    # 404 inside the prefix; a path that normalizes out of it is the API's (401 unsigned).
    assert reply.status in (401, 404), (path, reply.text[:200])
    assert "add_console" not in reply.text and "[project]" not in reply.text


async def test_the_api_behind_the_console_still_needs_credentials(api: Api) -> None:
    for method, path in (("GET", "/jobs/v1/_admin/jobs"), ("POST", "/console/"),
                         ("GET", "/auth/v1/user")):  # fmt: skip
        reply = await api.call(method, path, as_=None)
        assert reply.status == 401, (method, path, reply.text)


def test_the_modules_import_only_served_files_and_never_parse_data_as_html() -> None:
    files = load_files()
    scripts = {name: body.decode() for name, (body, _) in files.items() if name.endswith(".js")}
    assert {"app.js", "api.js", "dom.js", "pages/run.js", "pages/dlq.js"} <= set(scripts)
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"setAttribute\(\s*[\"']on|javascript:"
    )
    for name, text in scripts.items():
        assert not forbidden.search(text), (name, forbidden.search(text))
        base = name.rpartition("/")[0]
        for imported in re.findall(r'from "(\.{1,2}/[^"]+)"', text):
            parts = [*(base.split("/") if base else []), *imported.split("/")]
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            assert "/".join(resolved) in files, (name, imported)
    assert (STATIC / "index.html").exists()

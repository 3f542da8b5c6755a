"""A real headless Chromium for the console tests, driven by Playwright (Python).

The browser is Debian's `chromium` at /usr/bin/chromium (or REACTOR_CHROMIUM), never one
Playwright downloads. Without it, or without the `playwright` package, the tests that need a
browser skip and say why. The browser is launched once per test module.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip
# Where screenshots go: REACTOR_CONSOLE_SCREENSHOTS=docs writes docs/console-*.png (the ones
# the README shows); any other value is a folder; unset, the test's tmp_path.
SHOTS_ENV = "REACTOR_CONSOLE_SCREENSHOTS"
REQUIRE_ENV = "REACTOR_CONSOLE_REQUIRE_BROWSER"
REPO = Path(__file__).resolve().parents[2]


def chromium_path() -> str | None:
    given = os.environ.get("REACTOR_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def shots_dir(tmp_path: Path) -> Path:
    where = os.environ.get(SHOTS_ENV, "")
    if not where:
        return tmp_path
    return REPO / "docs" if where == "docs" else Path(where)


def _unavailable(reason: str) -> None:
    """Skip, unless REACTOR_CONSOLE_REQUIRE_BROWSER is set (.ci/run sets it where it has
    installed chromium): there a missing browser is a failure, not a reason to skip."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason}, and {REQUIRE_ENV} is set")
    pytest.skip(reason)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed (apt-get install -y chromium; or REACTOR_CHROMIUM)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()

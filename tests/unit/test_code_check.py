"""Deploy's check of a bundle's code (functions/code_check.py): Python and TS/JS that do not
parse, or export no fetch, are refused with file:line; good bundles pass. Also where bun is
looked for (functions/bun_binary.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reactor_jobs.functions.bun_binary import bun_host_command, find_bun
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.code_check import check_code
from reactor_jobs.functions.errors import BundleError

REPO = Path(__file__).resolve().parents[2]
needs_bun = pytest.mark.skipif(find_bun() is None, reason="no bun executable")


def archive(tmp_path: Path, files: dict[str, str]) -> bytes:
    root = tmp_path / "bundle"
    (root / "code").mkdir(parents=True)
    (root / "function.json").write_text("{}")
    for name, text in files.items():
        (root / "code" / name).write_text(text)
    return pack_dir(root)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"index.py": "async def fetch(r, e, c):\n    return (\n"}, "code/index.py:2: "),
        ({"index.py": "from .x import fetch\n", "x.py": "def f(:\n"}, "code/x.py:1: "),
        ({"index.py": "x = 1\n"}, "code/index.py must define `async def fetch"),
        ({"index.py": "\n\ndef fetch(r, e, c):\n    pass\n"}, "code/index.py:3: fetch must be"),
        ({"index.py": "def outer():\n    async def fetch(): pass\n"}, "at module level"),
    ],
)
def test_python_bundles_that_are_refused(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(BundleError) as info:
        check_code(archive(tmp_path, files), "python")
    assert message in info.value.message


@pytest.mark.parametrize(
    "files",
    [
        {"index.py": "async def fetch(request, env, ctx):\n    return 1\n"},
        {"index.py": "from .impl import fetch\n", "impl.py": "async def fetch(r, e, c): pass\n"},
    ],
)
def test_python_bundles_that_pass(tmp_path: Path, files: dict[str, str]) -> None:
    check_code(archive(tmp_path, files), "python")


@needs_bun
@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"index.ts": "export default {\n  fetch( }\n"}, "code/index.ts:2:10: Expected"),
        ({"index.ts": "import './a';\nexport default { fetch() {} };\n", "a.js": "const = 2\n"},
         "code/a.js:1:7: Expected identifier"),
        ({"index.ts": "export default { notFetch() {} };\n"},
         "code/index.ts: must `export default { fetch(request, env, ctx) }`"),
        ({"index.ts": "export const fetch = () => 1;\n"}, "must `export default"),
    ],
)  # fmt: skip
def test_bun_bundles_that_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(BundleError) as info:
        check_code(archive(tmp_path, files), "bun")
    assert message in info.value.message


@needs_bun
def test_bun_bundles_that_pass() -> None:
    check_code(pack_dir(REPO / "tests" / "bundles" / "ts-scenarios"), "bun")
    check_code(pack_dir(REPO / "examples" / "process-order-ts"), "bun")


def test_where_bun_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "my-bun"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("REACTOR_BUN", str(fake))
    assert find_bun() == str(fake)
    command = bun_host_command()
    assert command is not None and command[0] == str(fake)
    assert command[-1].endswith("reactor_jobs/hosts/bun/host.ts")
    monkeypatch.setenv("REACTOR_BUN", str(tmp_path / "missing"))
    assert find_bun() is None and bun_host_command() is None

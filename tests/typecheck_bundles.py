"""Type-checks the job code of the test bundles and the examples, as their authors' editors would.

Every bundle's entry module is `index`, so mypy cannot take them in one run as they lie. Each
bundle's code (and each example) is copied into a temporary tree as a package of its own name
(`bundle_ledger_v2`, `example_app`…) and the tree is checked once, with the project's mypy
settings (strict). Run: `python -m tests.typecheck_bundles`; CI runs it beside `mypy`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def python_code_dirs() -> dict[str, Path]:
    """Package name → directory, for every bundle and example that holds Python code."""
    found: dict[str, Path] = {}
    for kind, base in (("bundle", ROOT / "tests" / "bundles"), ("example", ROOT / "examples")):
        for entry in sorted(base.iterdir()):
            code = entry / "code" if (entry / "code").is_dir() else entry
            if entry.is_dir() and any(code.glob("*.py")):
                found[f"{kind}_{re.sub(r'[^a-z0-9]+', '_', entry.name.lower())}"] = code
    return found


def main() -> int:
    dirs = python_code_dirs()
    # A bundle is a package whose entry is `index` (its modules import each other
    # relatively); an app (examples/app) is a folder of top-level modules run from itself.
    apps = {name: code for name, code in dirs.items() if not (code / "index.py").exists()}
    dirs = {name: code for name, code in dirs.items() if name not in apps}
    with tempfile.TemporaryDirectory(prefix="reactor-typecheck-") as tmp:
        for name, code in dirs.items():
            target = Path(tmp) / name
            shutil.copytree(code, target, ignore=shutil.ignore_patterns("__pycache__"))
            (target / "__init__.py").touch()
        args = ["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental"]
        # A directory with an __init__.py is checked as the package it is (`bundle_x.index`).
        args += [str(Path(tmp) / name) for name in dirs]
        for code in apps.values():
            os.environ["MYPYPATH"] = os.pathsep.join(
                p for p in (os.environ.get("MYPYPATH"), str(code)) if p
            )
            args += [str(path) for path in sorted(code.glob("*.py"))]
        out, err, status = api.run([*args, "--python-executable", sys.executable])
        # mypy names files by the temporary copies: name the originals instead.
        for name, code in dirs.items():
            out = out.replace(str(Path(tmp) / name), str(code.relative_to(ROOT)))
        sys.stdout.write(out)
        sys.stderr.write(err)
    return status


if __name__ == "__main__":
    raise SystemExit(main())

"""The size of the server's pieces: small enough to read, split by resource.

No module in ``server/`` is over 400 lines and no class over 250 (README,
"Architecture"). The layers and the no-cycle rule are import-linter's, run by
``make lint``; this test runs the same contracts so that a plain ``pytest``
catches a broken layer too.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def _server_modules() -> list[Path]:
    return sorted(p for p in (REPO / "server").rglob("*.py") if "versions" not in p.parts)


def test_no_server_module_is_over_400_lines() -> None:
    sizes = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in _server_modules()}
    assert sizes, "no server modules found"
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_server_class_is_over_250_lines() -> None:
    big = {}
    for path in _server_modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    big[f"{path.relative_to(REPO)}:{node.name}"] = lines
    assert big == {}


def test_the_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency (pip install -e '.[dev]')"
    proc = subprocess.run(
        [lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "BROKEN" not in proc.stdout

"""The app's imports at startup: Streamlit runs each session in its own thread, so the engine and the app's modules
are imported once, under one lock (`explorer.import_all`), before any page imports them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "pages").glob("*.py"))


def test_app_imports_everything_under_the_lock_before_any_other_project_import() -> None:
    tree = ast.parse((ROOT / "app.py").read_text())
    calls = [k for k, n in enumerate(tree.body) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
             and ast.unparse(n.value.func) == "explorer.import_all"]
    assert calls, "app.py does not call explorer.import_all()"
    early = [ast.unparse(n) for n in tree.body[:calls[0]] if isinstance(n, ast.Import | ast.ImportFrom)]
    assert "import explorer" in early
    assert not [line for line in early if "vaecore" in line or line.startswith("from explorer")], early


def test_every_page_finds_its_project_modules_already_imported() -> None:
    """After import_all, a page's run imports no engine or app module of its own (which could race)."""
    from explorer import script_imports

    wanted = sorted({m for page in PAGES for m in script_imports(page)})
    assert "vaecore.evaluation.metrics" in wanted  # the reader reads the pages' imports
    code = ("import sys, pathlib, explorer; explorer.import_all(sorted(pathlib.Path('pages').glob('*.py'))); "
            f"missing = [m for m in {wanted!r} if m not in sys.modules]; print(missing); "
            "sys.exit(1 if missing else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pages import modules import_all leaves out: {done.stdout}{done.stderr[-2000:]}"


def test_concurrent_first_imports_all_succeed() -> None:
    """Four threads start the app's imports at once in a fresh interpreter: none fails, all see whole modules."""
    code = """
import pathlib, sys, threading
import explorer
barrier, errors = threading.Barrier(4), []
def run():
    barrier.wait()
    try:
        explorer.import_all(sorted(pathlib.Path("pages").glob("*.py")))
        from explorer import caches, catalog, latents  # noqa: F401
        from vaecore.hub import ModelLoadError  # noqa: F401
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))
threads = [threading.Thread(target=run) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors)
sys.exit(1 if errors else 0)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]

"""The VAE Explorer app package: state, caches, figures, widgets, training jobs and uploads."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import threading
from collections.abc import Iterable
from pathlib import Path

_IMPORTING = threading.Lock()
_imported: set[str] = set()  # what is imported: _APP, then each script (app.py calls import_all on every rerun)
_APP = "<the engine and every explorer module>"
_PROJECT = ("vaecore", "explorer")


def script_imports(path: Path) -> list[str]:
    """The engine and app modules a script imports at module level (read, not run)."""
    found = []
    for node in ast.parse(Path(path).read_text()).body:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [n for n in names if n.split(".")[0] in _PROJECT]
    return found


def import_all(scripts: Iterable[Path] = ()) -> None:
    """Import the engine, every app module and what `scripts` (the pages) import, one thread at a time; app.py
    calls it before any other project import.

    Streamlit runs each session's script in its own thread. Two first runs that import the engine at once
    (a second browser tab, or a page opened while the home page still loads) can meet in importlib's
    deadlock avoidance, each holding a submodule the other needs, and one of them then fails with "cannot
    import name … from partially initialized module" (seen in the server log). Once a script's imports are done,
    a call for it returns at once.
    """
    todo = [Path(s) for s in scripts if str(s) not in _imported]
    if _APP in _imported and not todo:
        return
    with _IMPORTING:
        import vaecore  # noqa: F401  (the whole engine package first, then the app's modules)

        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        for script in todo:
            for name in script_imports(script):
                importlib.import_module(name)
            _imported.add(str(script))
        _imported.add(_APP)

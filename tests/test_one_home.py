"""One home per fact: each metric's label, each family's title and each run-folder file name is spelled once in
the source tree (string literals, docstrings aside), and nobody keeps a table of metric labels of their own."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import vaecore
from vaecore import files
from vaecore.evaluation.registry import METRICS
from vaecore.models.base import MODEL_TYPES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "app.py", *[p for d in ("vaecore", "explorer", "pages", "experiments", "bench")
                              for p in sorted((ROOT / d).rglob("*.py"))]]
METRIC_MODULES = ROOT / "vaecore" / "evaluation" / "metrics"
FILE_NAMES = (files.CONFIG, files.WEIGHTS, files.CHECKPOINT, files.TRAIN, files.METRICS, files.SAMPLES,
              files.GMM_SAMPLES, files.EVAL, files.LOCK, files.APP_RUN, files.CATALOG, files.BEST_RECORD, files.CARD)
# the same name for another file: the project's own README, not a model card
OTHER_FILES = {("experiments/zoo_table.py", files.CARD), ("experiments/tvae_transfer.py", files.CARD),
               ("experiments/train_zoo.py", files.CARD), ("experiments/arelbo_table3.py", files.CARD)}


# the papers' numbers as printed and the reproduction board's rows, under the papers' own row labels ("VAE",
# "IWAE", ...): not our titles or labels
PAPER_LABELS = (ROOT / "vaecore" / "evaluation" / "reference.py", ROOT / "vaecore" / "evaluation" / "reproduction.py")


def _not_text(tree: ast.AST) -> set[int]:
    """Literals that are not shown text: docstrings (bare string statements), dict keys (names of fields) and the
    names in `__all__`."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            ids.add(id(node.value))
        elif isinstance(node, ast.Dict):
            ids.update(id(k) for k in node.keys if k is not None)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            ids.update(id(e) for e in ast.walk(node.value))
    return ids


def _literals(path: Path) -> Iterator[tuple[str, int]]:
    """(text, line) of every string literal of a module (f-string parts included) that is shown text."""
    tree = ast.parse(path.read_text())
    skip = _not_text(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.value, node.lineno


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_run_folder_file_names_are_spelled_once() -> None:
    home = ROOT / "vaecore" / "files.py"
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        for text, line in _literals(path):
            for name in FILE_NAMES:
                if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) and path != home \
                        and (_rel(path), name) not in OTHER_FILES:
                    found.setdefault(name, []).append(f"{_rel(path)}:{line}")
    assert not found, f"use the constants of vaecore.files: {found}"


def _family_homes() -> dict[str, Path]:
    return {cls.title: ROOT / (cls.__module__.replace(".", "/") + ".py") for cls in MODEL_TYPES.values()
            if cls.__module__.startswith("vaecore.") and cls.title}  # a test module's toy family is not the engine's


def _metric_spellings() -> set[str]:
    return {text for key, m in METRICS.items() for text in {m.label, m.title, m.short_title, m.short}
            if len(text) >= 3 and text != key}


def test_metric_labels_are_spelled_once() -> None:
    spellings, families = _metric_spellings(), _family_homes()
    found: dict[str, list[str]] = {}
    homes: dict[str, set[Path]] = {}
    for path in SOURCES:
        if path in PAPER_LABELS:
            continue
        for text, line in _literals(path):
            if text in spellings and families.get(text) != path:  # "IWAE": the metric's short label and a family
                if path.is_relative_to(METRIC_MODULES):
                    homes.setdefault(text, set()).add(path)
                else:
                    found.setdefault(text, []).append(f"{_rel(path)}:{line}")
    assert not found, f"read these from vaecore.evaluation.registry.METRICS: {found}"
    assert all(len(paths) == 1 for paths in homes.values()), homes  # one metric module registers each


def _label_tables(path: Path) -> Iterator[str]:
    """Dicts {metric key: "text", ...} and sequences of (metric key, "text", ...) pairs: a label table."""
    for node in ast.walk(ast.parse(path.read_text())):
        pairs = []
        if isinstance(node, ast.Dict):
            pairs = list(zip(node.keys, node.values, strict=True))
        elif isinstance(node, ast.List | ast.Tuple):
            pairs = [(e.elts[0], e.elts[1]) for e in node.elts if isinstance(e, ast.Tuple) and len(e.elts) >= 2]
        labelled = [k.value for k, v in pairs if isinstance(k, ast.Constant) and k.value in METRICS
                    and isinstance(v, ast.Constant) and isinstance(v.value, str)
                    and v.value not in MODEL_TYPES]  # {"kl": "vae"}: a family by objective, not a label
        if len(labelled) >= 2:
            yield f"{_rel(path)}:{node.lineno} labels {labelled}"


def test_no_module_keeps_its_own_table_of_metric_labels() -> None:
    tables = [t for path in SOURCES if not path.is_relative_to(METRIC_MODULES) for t in _label_tables(path)]
    assert not tables, tables


def test_family_titles_are_spelled_once() -> None:
    homes, metric_texts = _family_homes(), _metric_spellings()
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        if path in PAPER_LABELS:
            continue
        for text, line in _literals(path):
            if text in homes and path != homes[text] and not (text in metric_texts and path.is_relative_to(
                    METRIC_MODULES)):
                found.setdefault(text, []).append(f"{_rel(path)}:{line}")
    assert not found, f"read these from the family class (vaecore.models.families.family_title): {found}"
    assert len(homes) >= 24 and len(vaecore.PRESETS) > len(homes)

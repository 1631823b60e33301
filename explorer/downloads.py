"""Bytes for the download buttons: tables as CSV, arrays as .npz, a run folder as a zip. No Streamlit."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vaecore.training import run_folder

MAX_ZIP_BYTES = 512 * 2**20


def csv_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """A CSV of rows (dicts); the header is the union of their keys in first-seen order; None is empty."""
    seen: dict[str, None] = {}  # an ordered set: a list's `in` made 2,000 rows × 800 latent columns take 6 s
    for row in rows:
        seen.update(dict.fromkeys(row))
    columns = list(seen)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else _cell(row.get(k)) for k in columns})
    return buf.getvalue().encode()


def _cell(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return " ".join(str(x) for x in v)
    return v


def latents_rows(indices: np.ndarray, z: np.ndarray, coords: np.ndarray | None = None,
                 labels: np.ndarray | None = None, extra: Mapping[str, np.ndarray] | None = None) -> list[dict]:
    """One row per image: index, label, each latent dimension z0…, map coordinates x/y(/z) and extra columns."""
    rows = []
    axes = ("map_x", "map_y", "map_z")
    for k, i in enumerate(indices):
        row: dict[str, Any] = {"index": int(i)}
        if labels is not None:
            row["label"] = int(labels[k])
        if coords is not None:
            row.update({axes[j]: float(coords[k, j]) for j in range(coords.shape[1])})
        row.update({f"z{j}": float(v) for j, v in enumerate(z[k])})
        for name, values in (extra or {}).items():
            row[name] = float(values[k])
        rows.append(row)
    return rows


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An uncompressed-object-free .npz of the given arrays (loadable with allow_pickle=False)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})
    return buf.getvalue()


def folder_zip(folder: Path, skip: Iterable[str] = (run_folder.LOCK,)) -> bytes:
    """A zip of every file in a run folder (paths relative to its parent, so it unpacks into one folder),
    without its lock and the temporary files of interrupted writes."""
    folder = Path(folder)
    temp = set(run_folder.temp_files(folder))
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in set(skip) and p not in temp]
    total = sum(p.stat().st_size for p in files)
    if total > MAX_ZIP_BYTES:
        raise ValueError(f"{folder.name} holds {total / 2**20:,.0f} MB; downloads are limited to "
                         f"{MAX_ZIP_BYTES // 2**20} MB")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in files:
            zf.write(p, p.relative_to(folder.parent))
    return buf.getvalue()

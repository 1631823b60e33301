"""The zoo table: one row per bundled model (a preset that trains the same model as another shown once, with both
names) and per run of this session, with the engine's facts and the stored evaluation side by side.

Facts come from the engine: the family's title and group (`models.families`), the latent shape (`capabilities_of`
the config), metric labels and directions (`evaluation.registry`), the health flags (`evaluation.checks`, on the
images of the stored sample grid, the stored evaluation, and the mean image of the same test images). Values come
from eval.json (and their standard errors from the per-image values stored beside it, where there are some). No
Streamlit.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from explorer.catalog import bundled_catalog, finite, read_json_file
from explorer.diagnostics import stored_sample_flags
from vaecore.evaluation import checks
from vaecore.evaluation.checks import Flag
from vaecore.evaluation.per_image import load_per_image
from vaecore.evaluation.registry import METRICS
from vaecore.files import CONFIG, EVAL, GMM_SAMPLES, SAMPLES, TRAIN
from vaecore.models.families import card_group, family_title
from vaecore.presets import capabilities_of

TABLE_METRICS = ("nll-discrete", "mse", "fd", "active-units")
"""The metrics of the table, in column order: comparable across every model that defines them."""
SE_METRIC = "nll-discrete"
SPREAD_COLUMNS = {k: f"{METRICS[k].short} ± " + ("SE" if METRICS[k].per_image else "s.d.")
                  for k in TABLE_METRICS if k != SE_METRIC and (METRICS[k].per_image or METRICS[k].seeded)}
"""The other metrics' uncertainty columns: SE over the test images or s.d. over sample seeds (None: not stored)."""


@dataclass
class ZooRow:
    """One model of the table: where it is, what it is, how long it trained, what its evaluation says."""

    spec: str
    name: str
    source: str  # 'bundled' or 'run'
    title: str
    family: str
    group: str
    likelihood: str
    latent: str
    data: str
    epochs: float | None
    n_test: int | None
    values: dict[str, float | None]
    se: float | None = None
    spreads: dict[str, float | None] = field(default_factory=dict)  # the other metrics' SE or s.d. (SPREAD_COLUMNS)
    flags: list[Flag] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    folder: Path | None = None

    def record(self) -> dict[str, Any]:
        """The row as a table record: column title -> value (None where undefined or not evaluated)."""
        out: dict[str, Any] = {"model": self.name + (f" (= {', '.join(self.aliases)})" if self.aliases else ""),
                               "source": self.source, "family": self.family, "likelihood": self.likelihood,
                               "latent": self.latent, "data": self.data, "epochs": self.epochs,
                               "test images": self.n_test}
        for key in TABLE_METRICS:
            out[METRICS[key].short_title] = self.values.get(key)
            if key == SE_METRIC:
                out["± SE"] = self.se
            elif key in SPREAD_COLUMNS:
                out[SPREAD_COLUMNS[key]] = self.spreads.get(key)
        out["flags"] = ", ".join(f.label for f in self.flags)
        return out


def likelihood_label(config: dict[str, Any]) -> str:
    """'gaussian · sigma optimal': the config's likelihood and its settings."""
    kwargs = config.get("likelihood_kwargs") or {}
    settings = " ".join(f"{k} {v}" for k, v in kwargs.items())
    return f"{config.get('likelihood') or '?'}" + (f" · {settings}" if settings else "")


@functools.lru_cache(maxsize=512)
def _latent(config_json: str) -> str:
    try:
        shape = capabilities_of(json.loads(config_json)).latent_shape
    except (ValueError, KeyError, TypeError, RuntimeError):
        return "?"
    return "×".join(str(n) for n in shape)


def latent_label(config: dict[str, Any]) -> str:
    """The latent shape the engine builds for a config ('16', '16×7×7' for a VQ code map)."""
    return _latent(json.dumps(config, sort_keys=True, default=str))


def _family(config: dict[str, Any]) -> tuple[str, str]:
    kind = str(config.get("model_type") or "vae")
    try:
        return family_title(kind), card_group(config).title
    except ValueError:
        return kind, "other"


RUN_ONLY = frozenset({"threads", "device", "log_every", "log_to", "checkpoint_every", "sample_grids", "keep_best",
                      "val_batch_size", "data_dir", "out", "compile", "tracker", "tracker_project"})
"""Training settings that do not change the trained weights (where and how the run logs, its threads)."""


def same_model_key(config: dict[str, Any], train: dict[str, Any]) -> str:
    """What decides the trained weights: the model config without the preset's name, and every training setting
    but those in RUN_ONLY. Two bundled presets with one key trained one model."""
    model = {k: v for k, v in config.items() if k != "preset"}
    return json.dumps([model, {k: v for k, v in train.items() if k not in RUN_ONLY}], sort_keys=True, default=str)


def _values(result: dict[str, Any]) -> dict[str, float | None]:
    flat = dict(result)
    if isinstance(result.get("metrics"), dict):
        flat.update(result["metrics"])
    return {k: finite(flat.get(k)) for k in TABLE_METRICS}


def standard_error(folder: Path, key: str = SE_METRIC) -> float | None:
    """The standard error over the test images of a metric, from the per-image values stored beside eval.json
    (`evaluation.per_image`); None where none are stored."""
    try:
        store = load_per_image(folder)
        return None if store is None else float(store.estimate(key).se)
    except (KeyError, OSError, ValueError):
        return None


def _row(spec: str, name: str, source: str, folder: Path, entry: dict[str, Any] | None = None) -> ZooRow:
    config = read_json_file(folder / CONFIG)
    train = read_json_file(folder / TRAIN)
    result = read_json_file(folder / EVAL)
    family, group = _family(config)
    epochs = (entry or {}).get("epochs", train.get("epochs"))
    n_test = (result.get("settings") or {}).get("n_test") or result.get("n_test")
    return ZooRow(spec=spec, name=name, source=source, title=(entry or {}).get("title") or name, family=family,
                  group=group, likelihood=likelihood_label(config), latent=latent_label(config),
                  data=str(config.get("dataset") or train.get("data") or "?"),
                  epochs=finite(epochs), n_test=int(n_test) if finite(n_test) else None, values=_values(result),
                  se=standard_error(folder) if result else None, spreads=_spreads(result), folder=folder)


def _spreads(result: dict[str, Any]) -> dict[str, float | None]:
    """SE (over images) or s.d. (over seeds) of the table's other metrics, from the evaluation's "uncertainty"."""
    from vaecore.evaluation.registry import State, outcome
    from vaecore.evaluation.uncertainty import Over

    out: dict[str, float | None] = {}
    for key in SPREAD_COLUMNS:
        o = outcome(result, key)
        e = o.estimate if o.state is State.VALUE else None
        out[key] = None if e is None else e.sd if e.over is Over.SEEDS else e.se
    return out


def bundled_rows() -> list[ZooRow]:
    """Every bundled model once: presets that train the same model are merged into one row with their names."""
    rows: dict[str, ZooRow] = {}
    for entry in bundled_catalog():
        folder = Path(entry["folder"])
        key = same_model_key(entry.get("config") or {}, read_json_file(folder / TRAIN))
        if key in rows:
            rows[key].aliases.append(entry["name"])
            continue
        rows[key] = _row(entry["name"], entry["name"], "bundled", folder, entry)
    return list(rows.values())


def run_rows(folders: list[Path]) -> list[ZooRow]:
    """This session's runs that hold a model (their eval.json once evaluated)."""
    return [_row(str(f), f.name, "run", f) for f in folders if (f / CONFIG).is_file()]


@functools.lru_cache(maxsize=8)
def _reference(data: str, n_test: int) -> tuple[torch.Tensor, float]:
    """The first n test images of a built-in dataset and the training mean image's squared error on them."""
    from vaecore import load_dataset

    ds = load_dataset(data)
    test = ds.x_test[:n_test]
    return test, checks.mean_image_mse(ds.x_train, test)


@functools.lru_cache(maxsize=1024)
def _flags(folder: str, stamps: tuple[float, ...], data: str, shape: tuple[int, int, int],
           n_test: int) -> tuple[Flag, ...]:
    root = Path(folder)
    result = read_json_file(root / EVAL)
    out = list(checks.evaluation_flags(result))
    try:
        test, mean_mse = _reference(data, n_test)
    except (ValueError, OSError):
        return tuple(out)
    if tuple(test.shape[1:]) != tuple(shape):
        return tuple(out)
    out += checks.reconstruction_flags(_values(result).get("mse"), mean_mse)
    grid = next((root / name for name in (SAMPLES, GMM_SAMPLES) if (root / name).is_file()), None)
    if grid is not None:
        out += stored_sample_flags(grid, shape, test)
    return tuple(out)


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def folder_flags(folder: Path) -> list[Flag]:
    """The engine's health flags of a model folder (cached per file version): its stored evaluation, its
    reconstructions against the mean image and its stored samples, on the test images its evaluation used."""
    config = read_json_file(folder / CONFIG)
    result = read_json_file(folder / EVAL)
    shape = tuple(int(v) for v in config.get("input_shape") or (1, 28, 28))
    n_test = (result.get("settings") or {}).get("n_test") or result.get("n_test") or 2000
    data = str(config.get("dataset") or "mnist")
    stamps = tuple(_stamp(folder / name) for name in (EVAL, SAMPLES, GMM_SAMPLES))
    return list(_flags(str(folder), stamps, data, shape, int(n_test)))


def add_flags(row: ZooRow) -> ZooRow:
    """`folder_flags` of a row's model."""
    if row.folder is not None:
        row.flags = folder_flags(row.folder)
    return row


def zoo_rows(run_folders: list[Path]) -> list[ZooRow]:
    """The whole table: bundled models (grouped as the engine files them), then this session's runs."""
    rows = bundled_rows() + run_rows(run_folders)
    return [add_flags(r) for r in rows]

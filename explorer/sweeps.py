"""Sweeps: runs that vary one setting over a few values (queued together from the training page), gathered and
compared on one chart, the rate–distortion plane, with each run's point computed by the engine on the same test
images. No Streamlit."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer.jobs import SWEEPS, RunInfo
from vaecore.evaluation import rate_distortion as rd
from vaecore.files import WEIGHTS

RD_IMAGES = 500
"""Test images each sweep run's rate and distortion are computed on (the first ones of its dataset's test split)."""


@dataclass
class Sweep:
    """The runs of one sweep, in the order of its values."""

    id: str
    setting: str
    values: list[Any]
    runs: list[RunInfo]

    @property
    def label(self) -> str:
        return f"{SWEEPS.get(self.setting, self.setting)} over {', '.join(map(str, self.values))}"

    @property
    def finished(self) -> list[RunInfo]:
        return [r for r in self.runs if r.status == "finished" and (r.folder / WEIGHTS).is_file()]


def sweeps(runs: list[RunInfo]) -> list[Sweep]:
    """The session's sweeps, newest first, each with its runs in the order of the swept values."""
    found: dict[str, Sweep] = {}
    for r in runs:
        spec = (r.settings or {}).get("sweep")
        if not isinstance(spec, dict) or "id" not in spec:
            continue
        sweep = found.setdefault(spec["id"], Sweep(spec["id"], spec.get("setting", "?"), list(spec.get("values") or []),
                                                   []))
        sweep.runs.append(r)
    for sweep in found.values():
        order = {str(v): i for i, v in enumerate(sweep.values)}
        sweep.runs.sort(key=lambda r: order.get(str(r.settings["sweep"].get("value")), len(order)))
    return list(found.values())


@functools.lru_cache(maxsize=64)
def _point(folder: str, stamp: float) -> rd.RatePoint | None:
    import vaecore
    from vaecore.training import run_folder

    model = vaecore.load(folder, device="cpu")
    if not model.capabilities.elbo:
        return None
    data = run_folder.read_data_source(folder).load(progress=False)
    return rd.measure(model, data.x_test[:RD_IMAGES], seed=0)


def rate_distortion_point(run: RunInfo) -> rd.RatePoint | None:
    """A finished run's rate and distortion on the first RD_IMAGES test images of its data (the engine's
    `rate_distortion.measure`, cached per weights version); None for a model without an ELBO."""
    weights = Path(run.folder) / WEIGHTS
    return _point(str(run.folder), weights.stat().st_mtime) if weights.is_file() else None


def value_of(run: RunInfo) -> str:
    """The swept value of a run, as text."""
    return str(((run.settings or {}).get("sweep") or {}).get("value"))


def parse_values(setting: str, text: str) -> list[Any]:
    """The comma-separated values of a sweep as the setting's type (ValueError naming the bad one)."""
    out: list[Any] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(float(part) if setting == "beta" else int(part) if setting == "latent_dim" else part)
        except ValueError:
            kind = "a number" if setting == "beta" else "a whole number"
            raise ValueError(f"{SWEEPS[setting]}: {part!r} is not {kind}") from None
    return out


def stored_point(folder: Path) -> rd.RatePoint | None:
    """A model folder's point from its stored evaluation (eval.json with ELBO and KL, the per-image values beside it
    for the standard errors); None without one."""
    from explorer.catalog import read_json_file
    from vaecore.evaluation.per_image import load_per_image
    from vaecore.files import CONFIG, EVAL

    result = read_json_file(folder / EVAL)
    if not result:
        return None
    try:
        store = load_per_image(folder)
    except ValueError:
        store = None
    return rd.from_evaluation(result, read_json_file(folder / CONFIG), store)

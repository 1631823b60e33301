"""Out-of-distribution scores on the Likelihood comparison page: the model's test images against the other
MNIST-like dataset (Fashion-MNIST for an MNIST model and back) and against this session's uploads, all scored by
`vaecore.evaluation.ood`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explorer.caches import dataset_for, load_data, load_model
from explorer.catalog import model_stamp
from explorer.sources import UPLOADS_KEY, uploaded_images
from vaecore.evaluation import ood
from vaecore.utils import PROJECT_ROOT

OTHER = {"mnist": "fashion-mnist", "fashion-mnist": "mnist"}
NEEDS_FOLDER = {"fashion-mnist"}


def data_folder(name: str) -> Path | None:
    """Where the IDX files of a dataset that is not bundled are: $VAE_DATA_ROOT/<name>, the project's shared data
    folder beside the repository or one level up (../shared/data/<name>, ../../shared/data/<name>: a worktree), or
    the data/<name> folder inside it."""
    roots = [Path(os.environ["VAE_DATA_ROOT"])] if os.environ.get("VAE_DATA_ROOT") else []
    roots += [PROJECT_ROOT.parent / "shared" / "data", PROJECT_ROOT.parent.parent / "shared" / "data",
              PROJECT_ROOT / "data"]
    for folder in (root / name for root in roots):
        if folder.is_dir() and any(folder.glob("t10k-images*")):
            return folder
    return None


def other_dataset(spec: str) -> tuple[str | None, str]:
    """(the other dataset's name, '') or (None, why there is none) for a model."""
    dataset = str(getattr(load_model(spec).config, "dataset", "") or "")
    other = OTHER.get(dataset)
    if other is None:
        return None, (f"the model was trained on {dataset or 'an unnamed dataset'}; the out-of-distribution set is "
                      "defined for MNIST and Fashion-MNIST models (each scored on the other)")
    if other in NEEDS_FOLDER and data_folder(other) is None:
        return None, (f"{other} is not on this server: put its four IDX files in "
                      f"{PROJECT_ROOT.parent / 'shared' / 'data' / other} (or set VAE_DATA_ROOT)")
    return other, ""


@dataclass
class OODView:
    """What the page shows: the engine's result, the two sets' names and the uploads' scores."""

    result: ood.OODResult
    inside: str
    outside: str
    n: int
    k: int
    uploads: list[dict[str, Any]]


def compute(spec: str, n: int, k: int, progress: Any = None) -> OODView:
    """The engine's OOD scores of the first n test images of the model's dataset against the first n test images of
    the other dataset (held-out reference: the first n validation images), plus each uploaded image's −log p and
    where it falls among the test images."""
    model = load_model(spec)
    data = dataset_for(model)
    other, why = other_dataset(spec)
    if other is None:
        raise ValueError(why)
    other_data = load_data(other, str(data_folder(other)) if other in NEEDS_FOLDER else None)
    x_in, x_out, x_ref = data.split("test")[0][:n], other_data.split("test")[0][:n], data.split("val")[0][:n]
    if x_out.shape[1:] != x_in.shape[1:]:
        raise ValueError(f"{other} images are {tuple(x_out.shape[1:])}, the model takes {tuple(x_in.shape[1:])}")
    result = ood.ood_scores(model, x_in, x_out, x_ref, k=k, progress=progress)
    rows: list[dict[str, Any]] = []
    up = uploaded_images(tuple(model.config.input_shape))
    if up is not None:
        x_up = up.images[:ood.MAX_IMAGES]
        nll, _ = ood.nll_per_image(model, x_up, k, seed=3, progress=progress, stage="−log p of the uploaded images")
        where = ood.percentile(nll, result.inside["nll"])
        for i, (name, v, q) in enumerate(zip(up.names, nll, where, strict=False)):
            rows.append({"#": i, "file": name, "−log p (nats)": round(float(v), 1),
                         "test images with lower −log p": f"{100 * q:.1f} %",
                         "typicality": round(abs(float(v) - result.nll_reference), 1)})
    return OODView(result, str(getattr(model.config, "dataset", "")), other, n, k, rows)


def view_key(spec: str | None, n: int, k: int) -> tuple[Any, ...]:
    """What a shown result depends on: the model, the settings and this session's uploads."""
    stored = st.session_state.get(UPLOADS_KEY) or {}
    return spec, model_stamp(spec) if spec else None, n, k, stored.get("token")


def auroc_rows(view: OODView) -> list[dict[str, Any]]:
    """One row per score: what it is, its AUROC ± SE and what the number says (0.5 = no separation)."""
    rows = []
    for name, about in ood.SCORES.items():
        a = view.result.aurocs.get(name)
        if a is None:
            rows.append({"score": name, "what": about, "AUROC": "—",
                         "reading": f"not computed: {view.result.not_computed.get(name, '')}"})
            continue
        if a.value - 2 * a.se > 0.5:
            reading = f"ranks {view.outside} as less like the training data"
        elif a.value + 2 * a.se < 0.5:
            reading = f"ranks {view.outside} as MORE like the training data than {view.inside} itself"
        else:
            reading = "no separation shown (within 2 SE of 0.5)"
        rows.append({"score": name, "what": about, "AUROC": a.text(), "reading": reading})
    return rows


def nll_histogram(view: OODView) -> go.Figure:
    """Histograms of −log p of the two test sets (and of the uploads), in nats."""
    fig = go.Figure()
    for label, values in ((f"{view.inside} test (in)", view.result.inside["nll"]),
                          (f"{view.outside} test (out)", view.result.outside["nll"]),
                          ("uploads", np.array([r["−log p (nats)"] for r in view.uploads]))):
        if len(values):
            fig.add_trace(go.Histogram(x=values, name=label, opacity=0.6, nbinsx=40))
    fig.update_layout(barmode="overlay", height=320, xaxis_title=f"−log p (nats, {view.result.measure})",
                      yaxis_title="images", legend={"orientation": "h", "y": -0.3},
                      margin={"l": 50, "r": 10, "t": 10, "b": 40})
    return fig

"""The Pythae benchmark as a table: each bundled model's four tasks (reconstruction, generation,
classification, clustering) from its eval.json, with Pythae's published MNIST FIDs beside them.

Reads JSON only (checkpoints/catalog.json and every bundled model's eval.json); nothing is computed.
No Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from explorer.catalog import bundled_catalog, finite
from vaecore.evaluation.reference import PYTHAE_MNIST_SETTINGS, PYTHAE_TABLE4_MNIST, SOURCES
from vaecore.evaluation.registry import METRICS
from vaecore.evaluation.uncertainty import RULE
from vaecore.files import EVAL


def _column(key: str, what: str) -> str:
    return f"{METRICS[key].short} {what}"


# (eval.json key, column) for our numbers, grouped by Pythae's four tasks (plus k-NN accuracy); fd_<sampler> are
# the zoo's FDs of fitted samplers, the metric `fd` with z drawn from that sampler
OURS: tuple[tuple[str, str], ...] = (
    ("mse", _column("mse", "(reconstruction)")),
    ("fd", _column("fd", "prior")),
    ("fd_gmm", _column("fd", "GMM")),
    ("fd_maf", _column("fd", "MAF")),
    ("fd_two-stage", _column("fd", "2-stage")),
    ("probe", _column("probe", "acc")),
    ("kmeans", _column("kmeans", "acc")),
    ("knn", _column("knn", "acc")),
)
SORT_DEFAULT = OURS[0][1]
EVALUATION = "evaluation"
CURRENT, OLDER = "with ±", "older: no ±"


def spread_column(key: str) -> str:
    """The column of a metric's SE (over test images) or s.d. (over seeds), e.g. 'FD GMM ±'."""
    column = dict(OURS)[key]
    return column.replace(" (reconstruction)", "").replace(" acc", "") + " ±"


SPREAD = {key: spread_column(key) for key, _ in OURS if key != "fd_two-stage"}  # the 2-stage FD: one seed always
_METRIC_OF = {column: key.split("_")[0] for key, column in OURS}
PYTHAE_PREFIX = "Pythae FID"
"""Pythae's appendix Table 4 (MNIST): FID on Inception features after 100 epochs (the columns' help says so)."""
# (key in PYTHAE_TABLE4_MNIST, column)
PYTHAE: tuple[tuple[str, str], ...] = tuple((k, f"{PYTHAE_PREFIX}: {label}") for k, label in (
    ("prior", "prior"), ("gmm", "GMM"), ("two-stage", "2-stage"), ("maf", "MAF")))
TASKS = {
    "reconstruction": "MSE: squared error summed over the pixels of a test image, lower is better",
    "generation": "FD of generated images: from the prior, and from a 10-component GMM, a MAF and a 2-stage VAE "
                  "fitted on the training latent means; lower is better",
    "classification": "linear probe: logistic regression on training latent means, accuracy on the test latents",
    "clustering": "k-means (k = 10) on the test latent means, clusters matched one-to-one to labels (Hungarian)",
}
_COLUMNS = dict(OURS)
COLUMN_HELP = {
    _COLUMNS["mse"]: TASKS["reconstruction"],
    _COLUMNS["fd"]: "Fréchet distance of prior samples to the test images, on small-MNIST-classifier features",
    _COLUMNS["fd_gmm"]: "FD of samples drawn through a 10-component GMM fitted on the training latent means",
    _COLUMNS["fd_maf"]: "FD of samples drawn through a masked autoregressive flow fitted on the training latent means "
                        f"(empty: not in this model's {EVAL} yet)",
    _COLUMNS["fd_two-stage"]: "FD of samples drawn through a 2-stage VAE (Dai & Wipf) fitted on the training latent "
                              "means (empty: not computed yet; `python experiments/train_zoo.py --stage two-stage` "
                              "adds it)",
    _COLUMNS["probe"]: TASKS["classification"],
    _COLUMNS["kmeans"]: TASKS["clustering"],
    _COLUMNS["knn"]: METRICS["knn"].description,
    "epochs": "epochs this bundled model was trained (Pythae trained every model for 100)",
    EVALUATION: f"'{CURRENT}': evaluated with the current protocol (SE over the test images, s.d. over 3 sample seeds "
                f"or 10 k-means runs); '{OLDER}': an evaluation from before it, single values whose differences are "
                "not decided",
}
COLUMN_HELP.update({column: ("s.d. over sample seeds" if METRICS[key.split("_")[0]].seeded else
                             "standard error over the test images") + f" of {dict(OURS)[key]}"
                    for key, column in SPREAD.items()})


def pythae_row(preset: str) -> dict[str, Any] | None:
    """Pythae's Table 4 (MNIST) row for a vaecore preset, or None when the model is not in their benchmark."""
    return PYTHAE_TABLE4_MNIST.get(preset)


def benchmark_rows(entries: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per bundled model with an eval.json: model, epochs, our task metrics and Pythae's FIDs.

    `entries` defaults to `catalog.bundled_catalog()`. Missing values (an older eval.json without
    fd_maf, a model Pythae did not benchmark) are None.
    """
    rows = []
    for entry in bundled_catalog() if entries is None else entries:
        ev = entry.get("eval") or {}
        if not ev:
            continue
        flat = {**ev, **ev["metrics"]} if isinstance(ev.get("metrics"), dict) else ev
        preset = str((entry.get("config") or {}).get("preset") or entry["name"])
        paper = pythae_row(preset) or {}
        epochs = entry.get("epochs")
        row: dict[str, Any] = {"model": entry["name"],
                               "epochs": int(epochs) if isinstance(epochs, int | float) else None}
        row.update({column: finite(flat.get(key)) for key, column in OURS})
        row.update({column: _spread(flat, key) for key, column in SPREAD.items()})
        row[EVALUATION] = CURRENT if flat.get("uncertainty") else OLDER
        row["Pythae model"] = paper.get("label")
        row.update({column: finite(paper.get(key)) for key, column in PYTHAE})
        rows.append(row)
    return rows


def _spread(result: dict[str, Any], key: str) -> float | None:
    """A stored metric's SE (over images) or s.d. (over seeds), None without one."""
    from vaecore.evaluation.registry import State, outcome
    from vaecore.evaluation.uncertainty import Over

    o = outcome(result, key)
    if o.state is not State.VALUE or o.estimate is None:
        return None
    return o.estimate.sd if o.estimate.over is Over.SEEDS else o.estimate.se


def column_order(ours: Sequence[str] | None = None) -> list[str]:
    """The table's columns: each of Pythae's FIDs right beside our FD of the same sampler (so both are on screen),
    then our value's ±, the other tasks after them, Pythae's model name last."""
    theirs = dict(PYTHAE)
    out = ["model", "epochs", EVALUATION]
    for key, column in OURS:
        sampler = "prior" if key == "fd" else key.removeprefix("fd_") if key.startswith("fd_") else None
        out += [column] + ([theirs[sampler]] if sampler in theirs else []) + ([SPREAD[key]] if key in SPREAD else [])
    return [*out, "Pythae model"]


def has_values(rows: Sequence[dict[str, Any]], column: str) -> bool:
    """Whether any row has a value in a column."""
    return any(r.get(column) is not None for r in rows)


def caption() -> str:
    """Why Pythae's FIDs and our FDs must not be compared in absolute value, and where the numbers come from."""
    s = PYTHAE_MNIST_SETTINGS
    return (f"Pythae columns: {SOURCES['pythae']}, appendix Table 4 (MNIST, {s['network']}): FID on Inception-v3 "
            f"features from {s['fid_samples']:,} samples, every model trained {s['epochs']} epochs (the best of "
            f"{s['configs_per_model']} configurations). Our FD uses the features of a small MNIST classifier and "
            "fewer samples, and the bundled models trained far fewer epochs: compare models within a column, "
            "not our FD with their FID in absolute value. Pythae's reconstruction, classification and clustering "
            "numbers are not in our copy of the paper. Empty cells: not evaluated, or not in Pythae's benchmark. "
            f"Each of our values has its ± beside it (SE over the test images; s.d. over 3 sample seeds for FD, over "
            f"10 runs for k-means; the 2-stage FD is one seed); a sorted column orders values, it does not decide "
            f"them: {RULE}. Rows marked '{OLDER}' were evaluated before the protocol stored these and carry none.")


def sorted_rows(rows: Sequence[dict[str, Any]], column: str, descending: bool = False) -> list[dict[str, Any]]:
    """Rows sorted by a column, empty cells last whatever the direction."""
    present = [r for r in rows if r.get(column) is not None]
    missing = [r for r in rows if r.get(column) is None]
    return sorted(present, key=lambda r: r[column], reverse=descending) + missing


def better_direction(column: str) -> str:
    """Which way a column is better: the engine's direction of its metric; Pythae's FIDs: lower."""
    if column in _METRIC_OF:
        return METRICS[_METRIC_OF[column]].direction.phrase
    return "lower is better" if column.startswith(PYTHAE_PREFIX) else ""


def column_figure(rows: Sequence[dict[str, Any]], column: str) -> Any:
    """A bar per model for one column of the table (models without a value are left out)."""
    import plotly.graph_objects as go

    shown = [r for r in rows if r.get(column) is not None]
    shown.reverse()  # horizontal bars draw bottom-up: the table's first row on top
    key = next((k for k, c in OURS if c == column), None)
    spread = SPREAD.get(key) if key else None
    errors = [r.get(spread) or 0.0 for r in shown] if spread else None
    fig = go.Figure(go.Bar(y=[r["model"] for r in shown], x=[r[column] for r in shown], orientation="h",
                           text=[f"{r[column]:.3g}" for r in shown], textposition="auto",
                           error_x={"type": "data", "array": errors, "visible": True} if errors else None,
                           hovertemplate="%{y}: %{x:.3g}<extra></extra>"))
    title = f"{column} — {better_direction(column)}" + (" (bars: ± SE or s.d.; none on older evaluations)"
                                                          if errors else "")
    fig.update_layout(height=max(240, 20 * len(shown) + 80), title=title,
                      yaxis={"automargin": True, "tickfont": {"size": 12}}, bargap=0.25,
                      margin={"l": 10, "r": 10, "t": 50, "b": 40})
    return fig

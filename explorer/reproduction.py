"""The reproduction board for the Benchmark page: the result files of experiments/reproduction.py as tables
(ours ± SE beside the published values) and the learning curves as a figure.

Reads JSON only (experiments/results/reproduction/*.json, through vaecore.evaluation.reproduction); nothing is
computed but means and standard errors over the stored per-image values. No Streamlit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer.catalog import PROJECT_ROOT
from vaecore.evaluation import reproduction as board
from vaecore.evaluation.reference import reproduction_source

GROUPS = {"iwae": "IWAE paper, Table 1 (one stochastic layer, dynamically binarized, K = 5000)",
          "pythae": "Pythae's reproductions (its networks, optimizers and schedules)"}
COLUMNS = ["row", "status", "epochs", "−log p(x), ours", "± SE", "test images", "K", "published",
           "published epochs", "paper", "ours − published", "reached"]
COLUMN_HELP = {
    "−log p(x), ours": "mean over the test images of the IWAE estimate of −log p(x) in nats (lower is better)",
    "± SE": "standard error of that mean over the test images",
    "test images": "how many test images the final estimate averages (the first N of MNIST's test set, binarized "
                   "once with a fixed seed)",
    "K": "importance samples per image, as in the published number",
    "published": "the published value (IWAE paper: Burda et al. 2016; Pythae: the value Pythae obtained)",
    "published epochs": "the budget of the published value",
    "paper": "the value of the original paper Pythae compares with",
    "ours − published": "positive: ours is worse",
    "reached": "ours below the published value, or at most 2 SE above it",
    "status": "done: final estimate; training: only curve points so far; not run: no result file; invalid: the "
              "posterior's draws are not representable, so the estimate is not a likelihood",
}


def results_dir() -> Path:
    """experiments/results/reproduction (VAE_REPRODUCTION_RESULTS overrides, e.g. for tests)."""
    return Path(os.environ.get("VAE_REPRODUCTION_RESULTS", PROJECT_ROOT / "experiments" / "results" / "reproduction"))


def load() -> dict[str, dict[str, Any]]:
    return board.load_results(results_dir())


def table(results: dict[str, dict[str, Any]], group: str) -> list[dict[str, Any]]:
    """The rows of one group, one dict per row, keyed by COLUMNS (None: empty cell)."""
    out = []
    for item in board.board_rows(results, group):
        invalid = item["valid"] is False
        status = (f"invalid: {100 * item['unrepresentable']:.0f} % of posterior draws saturate at the ball's boundary "
                  f"(the estimate {item['nll']:.2f} is not a likelihood)" if invalid else item["status"])
        out.append({
            "row": item["label"], "status": status, "epochs": item["epochs"],
            "−log p(x), ours": None if invalid else item["nll"], "± SE": None if invalid else item["se"],
            "test images": item["n_images"], "K": item["k"],
            "published": item["published"], "published epochs": item["published_epochs"], "paper": item["paper"],
            "ours − published": item["gap"],
            "reached": None if item["reached"] is None else ("yes" if item["reached"] else "no"),
        })
    return out


def paired_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """IWAE − VAE at k = 5 and 50 on the same test images (the IWAE paper's claim), with the published difference."""
    from vaecore.evaluation.reference import REPRODUCTION_MNIST_NLL as PUB

    out = []
    for k in (5, 50):
        a, b = results.get(f"iwae-k{k}"), results.get(f"vae-k{k}")
        row: dict[str, Any] = {"k": k, "IWAE − VAE, ours": None, "± SE": None, "verdict": None,
                               "published": PUB[f"iwae-k{k}"]["value"] - PUB[f"vae-k{k}"]["value"]}
        if board.final_summary(a) and board.final_summary(b):
            try:
                mean, se = board.paired_difference(a, b)
                row.update({"IWAE − VAE, ours": mean, "± SE": se, "verdict": board.difference_verdict(mean, se)})
            except ValueError as err:
                row["verdict"] = str(err)
        out.append(row)
    return out


def has_results(results: dict[str, dict[str, Any]]) -> bool:
    return any(r.get("curve") or "final" in r for r in results.values())


def budget_text(results: dict[str, dict[str, Any]]) -> str:
    return board.budget_text(results)


def curve_rows(results: dict[str, dict[str, Any]]) -> list[str]:
    """The ids of the rows that have curve points, in board order."""
    have = {p["row"] for p in board.curve_points(results)}
    return [r.id for r in board.ROWS if r.id in have]


def source(group: str) -> str:
    return reproduction_source(group)


def notes(group: str) -> list[str]:
    """The stated differences from the published setting, one line per row that has any."""
    return [f"**{r.label}**: {r.notes}" for r in board.ROWS if r.group == group and r.notes]


def curve_figure(results: dict[str, dict[str, Any]], rows: Sequence[str] | None = None) -> Any:
    """−log p(x) on the curve subset after each epoch, one line per row, with ±1 SE error bars."""
    import plotly.graph_objects as go

    points = board.curve_points(results)
    fig = go.Figure()
    for row in board.ROWS:
        if rows is not None and row.id not in rows:
            continue
        pts = sorted((p for p in points if p["row"] == row.id), key=lambda p: p["epoch"])
        if not pts:
            continue
        fin = board.final_summary(results.get(row.id))
        name = f"{row.id} (invalid: draws saturate)" if fin and not fin["valid"] else row.id
        fig.add_trace(go.Scatter(
            x=[p["epoch"] for p in pts], y=[p["nll"] for p in pts], mode="lines+markers", name=name,
            error_y={"type": "data", "array": [p["se"] for p in pts], "visible": True, "thickness": 1},
            hovertemplate=f"{row.label}<br>epoch %{{x}}: %{{y:.2f}} nats<extra></extra>"))
    ks = sorted({(p["k"], p["n_images"]) for p in points})
    subset = "; ".join(f"K = {k}, first {n:,} test images" for k, n in ks)
    fig.update_layout(height=420, title=f"Learning curves: test −log p(x) after each epoch ({subset})",
                      xaxis_title="epoch", yaxis_title="−log p(x), nats (lower is better)",
                      margin={"l": 60, "r": 10, "t": 50, "b": 50})
    return fig

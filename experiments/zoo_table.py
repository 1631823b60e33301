"""Render the bundled models' test metrics (checkpoints/*/eval.json) as Markdown, and check the
orderings the papers claim against what we measured.

    python experiments/zoo_table.py > checkpoints/RESULTS.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
from train_zoo import EVAL_N_TEST, ZOO  # noqa: E402

COLUMNS = [("elbo", "ELBO"), ("iwae", "IWAE LL (K=100)"), ("nll-pdf", "−log pdf"), ("nll-discrete", "−log p"),
           ("bpd", "bits/dim"), ("mse", "MSE"), ("active-units", "active units"), ("knn", "KNN acc"),
           ("fd", "FD prior"), ("fd_gmm", "FD GMM")]


def load() -> dict[str, dict]:
    out = {}
    for entry in ZOO:
        path = ROOT / "checkpoints" / entry.name / "eval.json"
        if path.exists():
            out[entry.name] = json.loads(path.read_text())
    return out


def fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def table(results: dict[str, dict]) -> str:
    epochs = {name: json.loads((ROOT / "checkpoints" / name / "train.json").read_text())["epochs"] for name in results}
    head = "| model | epochs | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 2)]
    for name, r in results.items():
        lines.append(f"| `{name}` | {epochs[name]} | " + " | ".join(fmt(r.get(k)) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def check(claim: str, ok: bool | None, detail: str) -> str:
    verdict = "holds" if ok else ("does not hold" if ok is not None else "not measurable")
    return f"- {claim}: **{verdict}** ({detail})"


def orderings(r: dict[str, dict]) -> list[str]:
    out = []
    s, g = r.get("sigma-vae"), r.get("gaussian-vae")
    if s and g:
        out.append(check("σ-VAE beats the σ = 1 Gaussian VAE on −log p", s["nll-discrete"] < g["nll-discrete"],
                         f"{s['nll-discrete']:.0f} vs {g['nll-discrete']:.0f} nats"))
        out.append(check("σ-VAE beats the σ = 1 Gaussian VAE on sample quality (FD, prior samples)",
                         s["fd"] < g["fd"], f"FD {s['fd']:.1f} vs {g['fd']:.1f}"))
        out.append(check("σ-VAE beats the σ = 1 Gaussian VAE on sample quality (FD, GMM samples)",
                         s["fd_gmm"] < g["fd_gmm"], f"FD {s['fd_gmm']:.1f} vs {g['fd_gmm']:.1f}"))
        out.append(check("the σ = 1 VAE collapses (fewer active units, higher MSE)",
                         g["active-units"] < s["active-units"] and g["mse"] > s["mse"],
                         f"{g['active-units']} vs {s['active-units']} active units, MSE {g['mse']:.1f} vs "
                         f"{s['mse']:.1f}"))
    for v in ("iso-i", "iso-d", "diag-i", "diag-d"):
        a, t = r.get(f"arelbo-{v}"), r.get(f"trainable-{v}")
        if a and t:
            out.append(check(f"AR-ELBO {v} matches or beats its trainable-Σx counterpart (FD with GMM)",
                             a["fd_gmm"] <= t["fd_gmm"] * 1.05, f"FD {a['fd_gmm']:.1f} vs {t['fd_gmm']:.1f}; "
                             f"prior {a['fd']:.1f} vs {t['fd']:.1f}; MSE {a['mse']:.1f} vs {t['mse']:.1f}"))
    return out


def main() -> None:
    results = load()
    print(f"Test metrics of the bundled models on the first {EVAL_N_TEST} MNIST test images "
          "(nats per image; MSE summed over pixels; FD = Fréchet distance in the features of the bundled "
          "MNIST classifier, 2000 samples — not comparable with Inception FID). `–`: undefined for that model.\n")
    print(table(results))
    print("\nThe papers' orderings, checked against these numbers:\n")
    print("\n".join(orderings(results)))


if __name__ == "__main__":
    main()

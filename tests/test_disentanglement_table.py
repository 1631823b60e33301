"""The dSprites study's table (experiments/disentanglement_table.py): seeds as distributions (mean ± s.d. over seeds,
n − 1), every seed listed, the budget said beside the papers', chance by the 2-SE rule. (That RESULTS.md holds the
table the committed result files give is tests/test_zoo.py's check of the whole file.)"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
import disentanglement_table as T  # noqa: E402


def _record(family: str, seed: int, mig: float, bv: float, se: float = 0.02) -> dict:
    metrics = {"beta-vae-score": {"chance": 0.2, "settings": {}}, "factor-vae-score": {"chance": 0.2, "settings": {}}}
    return {"family": family, "seed": seed, "steps": 500, "train_seconds": 1200.0, "eval_seconds": 500.0, "threads": 1,
            "batch_size": 64, "lr": 5e-4, "data": "dsprites-procedural", "torch": "x",
            "result": {"mig": mig, "beta-vae-score": bv, "beta-vae-score_se": se, "elbo": -400.0 - seed,
                       "settings": {"n_test": 10000}, "disentanglement": {"metrics": metrics}}}


def test_each_family_is_its_seeds_mean_and_sd_and_every_seed_is_listed() -> None:
    migs = [0.10, 0.20, 0.35]
    records = [_record("beta-vae", s, m, 0.9) for s, m in enumerate(migs)] + [_record("vae", 0, 0.01, 0.21)]
    md = "\n".join(T.table(records))
    beta = next(line for line in md.splitlines() if line.startswith(f"| {T.title('beta-vae')} | 3 |"))
    assert f"{statistics.mean(migs):.3f} ± {statistics.stdev(migs):.3f}" in beta  # 0.217 ± 0.126
    assert "0.010 (1 seed)" in next(line for line in md.splitlines() if line.startswith(f"| {T.title('vae')} | 1 |"))
    for s, m in enumerate(migs):
        assert any(line.startswith(f"| {T.title('beta-vae')} | {s} |") and f"| {m:.3f} |" in line
                   for line in md.splitlines())
    # the rule: within 2 SE of 1/K is at chance (0.21 ± 0.02 is; 0.9 is not)
    chance = next(line for line in md.splitlines() if line.startswith("Chance level"))
    assert f"{T.title('vae')} seed 0" in chance and T.title("beta-vae") not in chance
    assert "500 steps of batch 64" in md and "300,000 steps" in md and "600 × less" in md



def test_models_of_different_budgets_are_never_pooled() -> None:
    short, long = _record("vae", 0, 0.01, 0.2), {**_record("vae", 0, 0.30, 0.8), "steps": 3000}
    short["result"].update({"kl-per-dim_total": 0.05, "kl-per-dim_collapsed": 9, "kl-per-dim": [0.0] * 10})
    long["result"].update({"kl-per-dim_total": 20.0, "kl-per-dim_collapsed": 2, "kl-per-dim": [2.0] * 10})
    md = "\n".join(T.table([long, short]))
    rows = [line for line in md.splitlines() if line.startswith(f"| {T.title('vae')} | 1 |")]
    assert [r.split(" | ")[2] for r in rows] == ["500", "3000"]  # one summary row per budget, in step order
    assert "0.010 (1 seed)" in rows[0] and "0.300 (1 seed)" in rows[1]
    gives = [line for line in md.splitlines() if line.startswith("What ")]
    assert gives[0].startswith("What 500 steps give") and "near-uninformative" in gives[0]
    assert gives[1].startswith("What 3,000 steps give") and "near-uninformative" not in gives[1]

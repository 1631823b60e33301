"""The reproduction board: test −log p(x) on binarized MNIST, ours beside the published value, at a stated budget.

    python experiments/reproduction.py --epochs 10                  # train + evaluate every row (resumable)
    python experiments/reproduction.py --epochs 10 --rows iwae-k5   # some rows only
    python experiments/reproduction.py --report                     # the board, from the result files only
    python experiments/reproduction.py --tiny --out /tmp/r --runs /tmp/r/runs   # a smoke run in a minute

Two groups of rows, each the published setting as far as it is stated (networks, latent size, optimizer,
learning-rate schedule, batch size, binarization, number of importance samples K):

* `iwae`: Burda et al. 2016 (IWAE), Table 1, one stochastic layer: the 784-200-200-50 tanh MLP (`iwae-mlp`),
  dynamically binarized MNIST, Adam (β = 0.9, 0.999, ε = 1e-4), batch 20, lr 1e-3·10^(−i/7) over 3^i passes
  (i = 0..7, 3280 epochs in all), −log p(x) with K = 5000. "VAE (k)" is the ELBO averaged over k draws (our
  CIWAE with β = 1); VAE and IWAE are the same objective at k = 1, trained once.
* `pythae`: the rows of Pythae's reproducibility table (examples/scripts/reproducibility/ of
  clementchadebec/benchmark_VAE) on MNIST, with the networks, epochs, optimizer, schedule and K of its scripts.

Every row trains for the same number of epochs (`--epochs`, the budget, stated on the board beside each row's
published budget), each with its own schedule cut at that budget. After every epoch the model's −log p(x) is
estimated on a fixed test subset (`CURVE_K` samples, the first `CURVE_IMAGES` test images): the learning curve.
The final estimate uses the row's published K on the first `FINAL_IMAGES` test images, one value per image, so a
standard error over images and paired differences between rows on the same images can be computed. Test images
are binarized once with the fixed seed of `vaecore.data.binarize` (TEST_SEED), identical for every row.

Each row trains in `<runs>/<row>` (the engine's exact resume picks up an interrupted row) and writes
`<out>/<row>.json`; a finished row is skipped. `--commit` commits each finished row's file with
/work/coord/commit_results.sh. `--report` writes docs/reproduction.md and the board's section of
checkpoints/RESULTS.md from the result files alone.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vaecore.evaluation.reference import REPRODUCTION_MNIST_NLL, reproduction_source  # noqa: E402
from vaecore.utils import atomic_write_json, read_json  # noqa: E402

OUT = ROOT / "experiments" / "results" / "reproduction"
RUNS = ROOT / "runs" / "reproduction"
DOC = ROOT / "docs" / "reproduction.md"
RESULTS = ROOT / "checkpoints" / "RESULTS.md"
COMMIT = Path("/work/coord/commit_results.sh")
CURVE_K = 200
CURVE_IMAGES = 1000
FINAL_IMAGES = 2000
EVAL_SEED = 0
BEGIN, END = "<!-- reproduction-board:begin -->", "<!-- reproduction-board:end -->"

_IWAE_TRAIN = {"optimizer": "adam", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-4, "batch_size": 20,
               "scheduler": "multistep", "milestones": [1, 4, 13, 40, 121, 364, 1093],
               "step_gamma": 10 ** (-1 / 7)}
_PYTHAE_IWAE_TRAIN = {**_IWAE_TRAIN, "milestones": [2, 5, 14, 28, 41, 122, 365, 1094]}
_PYTHAE_SLOW_DECAY = {"scheduler": "multistep", "milestones": [200, 350, 500, 750, 1000], "step_gamma": 10 ** (-1 / 5)}
_IWAE_NET = {"arch": "iwae-mlp", "latent_dim": 50, "likelihood": "bernoulli", "likelihood_kwargs": {}}


@dataclass(frozen=True)
class Row:
    """One board row: how it is trained and scored, and the published setting it follows."""

    id: str
    group: str            # "iwae" | "pythae"
    label: str
    preset: str
    model: dict[str, Any]  # preset overrides
    train: dict[str, Any]  # TrainConfig fields (besides epochs)
    published_epochs: int
    notes: str = ""
    kl_warmup_epochs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


ROWS: list[Row] = [
    Row("iwae-k1", "iwae", "VAE = IWAE, k = 1", "iwae", {**_IWAE_NET, "k": 1},
        {**_IWAE_TRAIN, "binarize": "dynamic"}, 3280,
        "one training serves both k = 1 rows: the two objectives are the same at k = 1"),
    Row("vae-k5", "iwae", "VAE, k = 5", "ciwae", {**_IWAE_NET, "k": 5, "ciwae_beta": 1.0},
        {**_IWAE_TRAIN, "binarize": "dynamic"}, 3280, "the ELBO averaged over 5 draws (CIWAE with β = 1)"),
    Row("vae-k50", "iwae", "VAE, k = 50", "ciwae", {**_IWAE_NET, "k": 50, "ciwae_beta": 1.0},
        {**_IWAE_TRAIN, "binarize": "dynamic"}, 3280, "the ELBO averaged over 50 draws (CIWAE with β = 1)"),
    Row("iwae-k5", "iwae", "IWAE, k = 5", "iwae", {**_IWAE_NET, "k": 5},
        {**_IWAE_TRAIN, "binarize": "dynamic"}, 3280),
    Row("iwae-k50", "iwae", "IWAE, k = 50", "iwae", {**_IWAE_NET, "k": 50},
        {**_IWAE_TRAIN, "binarize": "dynamic"}, 3280),
    Row("pythae-vae", "pythae", "VAE", "bernoulli-vae", {"arch": "vae-mlp-400", "latent_dim": 40},
        {"optimizer": "adam", "lr": 1e-4, "batch_size": 100, **_PYTHAE_SLOW_DECAY, "binarize": "static"}, 500,
        "Pythae trains on Larochelle's fixed binarization (binarized_mnist_*.amat); ours is one seeded draw of our "
        "MNIST's grey levels"),
    Row("pythae-vamp", "pythae", "VAMP, K = 500 pseudo-inputs", "vamp-vae",
        {"arch": "vamp-mlp", "latent_dim": 40, "vamp_components": 500, "likelihood": "bernoulli",
         "likelihood_kwargs": {}},
        {"optimizer": "rmsprop", "lr": 1e-4, "beta2": 0.99, "batch_size": 100, **_PYTHAE_SLOW_DECAY,
         "binarize": "static"}, 2000,
        "KL weight warmed up linearly over 100 epochs as in Pythae's script (per step here, per epoch there); "
        "Pythae's encoder clips log σ² to [−6, 2] with a hardtanh, ours does not; Larochelle's fixed binarization "
        "there, one seeded draw here", kl_warmup_epochs=100),
    Row("pythae-iwae", "pythae", "IWAE, 50 samples", "iwae", {**_IWAE_NET, "k": 50},
        {**_PYTHAE_IWAE_TRAIN, "binarize": "static"}, 3280,
        "Larochelle's fixed binarization there, one seeded draw here"),
    Row("pythae-miwae", "pythae", "MIWAE, M = 8, K = 8", "miwae", {**_IWAE_NET, "m": 8, "k": 8},
        {**_PYTHAE_IWAE_TRAIN, "binarize": "dynamic"}, 3280,
        "Pythae trains on 60,000 images (train + validation), we on 50,000"),
    Row("pythae-piwae", "pythae", "PIWAE, M = 8, K = 8", "piwae", {**_IWAE_NET, "m": 8, "k": 8},
        {**_PYTHAE_IWAE_TRAIN, "binarize": "dynamic"}, 3280,
        "Pythae trains on 60,000 images (train + validation), we on 50,000"),
    Row("pythae-ciwae", "pythae", "CIWAE, β = 0.05, K = 64", "ciwae", {**_IWAE_NET, "k": 64, "ciwae_beta": 0.05},
        {**_PYTHAE_IWAE_TRAIN, "binarize": "dynamic"}, 3280,
        "β = 0.05 as the README's table row says (its script sets 0.5); 60,000 training images there, 50,000 here"),
    Row("pythae-hvae", "pythae", "HVAE, n_lf = 4", "hvae",
        {"arch": "hvae-mlp", "latent_dim": 64, "n_lf": 4, "eps_lf": 0.05, "beta_zero": 1.0,
         "likelihood": "bernoulli", "likelihood_kwargs": {}},
        {"optimizer": "adamax", "lr": 5e-4, "batch_size": 100, **_PYTHAE_SLOW_DECAY, "binarize": "static"},
        2000, "Pythae's β_0 = 1 is √β_0 = β_0 = 1 here; Larochelle's fixed binarization there, one seeded draw "
        "here"),
    Row("pythae-svae", "pythae", "SVAE (S^10)", "svae", {"arch": "svae-mlp", "latent_dim": 11},
        {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "binarize": "dynamic"}, 500,
        "Pythae trains on 60,000 images (train + validation), we on 50,000"),
    Row("pythae-pvae", "pythae", "Poincaré VAE (wrapped normal, c = 0.7)", "poincare-vae",
        {"arch": "pvae-mlp", "latent_dim": 10, "curvature": 0.7},
        {"optimizer": "adam", "lr": 5e-4, "batch_size": 128, "binarize": "static"}, 80,
        "Pythae scores the grey-level test images (clamped to [1e-5, 1 − 1e-5]) with the Bernoulli likelihood, "
        "which is not a probability of those images; we score the binarized test images. Its encoder has one shared "
        "variance and its decoder a gyroplane first layer; ours a variance per dimension and a linear layer"),
]
ROW_BY_ID = {r.id: r for r in ROWS}
ORDER = ["pythae-vae", "pythae-svae", "pythae-pvae", "iwae-k1", "pythae-hvae", "pythae-vamp", "vae-k5", "iwae-k5",
         "iwae-k50", "vae-k50", "pythae-iwae", "pythae-miwae", "pythae-ciwae", "pythae-piwae"]
"""Training order: the cheap rows first, so the board fills early; k = 50 and 64 rows cost ~50 decoder passes."""


@dataclass
class Budget:
    """What this machine spends per row: the same epochs for every row, and the evaluation sizes."""

    epochs: int | None           # None: each row's published epochs (the GPU script's full budget)
    curve_k: int = CURVE_K
    curve_images: int = CURVE_IMAGES
    final_images: int = FINAL_IMAGES
    final_k: int | None = None   # None: each row's published K
    limit: int | None = None     # training images (None: all 50,000)
    val_limit: int = 2000
    threads: int | None = 1
    device: str = "auto"


def published_k(row: Row) -> int:
    """The number of importance samples of the row's published −log p(x)."""
    return int(REPRODUCTION_MNIST_NLL[row.id]["k"])


# evaluation --------------------------------------------------------------------------------------------------------
def test_images(n: int) -> torch.Tensor:
    """The first n MNIST test images of the test set binarized once with the fixed test seed (float32 in {0, 1})."""
    from vaecore.data.binarize import binarized_split
    from vaecore.data.datasets import load_dataset

    return binarized_split(load_dataset("mnist").split("test")[0], "test")[:n]


def nll_per_image(model: torch.nn.Module, x: torch.Tensor, k: int, seed: int = EVAL_SEED) -> torch.Tensor:
    """−log p(x) per image in nats, the engine's IWAE estimate with K = k importance samples (float64, CPU)."""
    from vaecore.evaluation.metrics import iwae_log_likelihood

    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    return -iwae_log_likelihood(model, x.to(device), k=k, batch_size=100, generator=gen).cpu()


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error over images (sample s.d. / √n; 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


# training ---------------------------------------------------------------------------------------------------------
def row_epochs(row: Row, budget: Budget) -> int:
    """The epochs this row trains for: the budget's, or the row's published number."""
    return budget.epochs or row.published_epochs


def curve_epochs(total: int) -> list[int]:
    """The epochs after which the curve is measured: every epoch up to 20, else 1, 2, 3, 5, 10, 20, 30, 50, ... and
    the last."""
    if total <= 20:
        return list(range(1, total + 1))
    series = [m * 10 ** e for e in range(8) for m in (1, 2, 3, 5)]
    return sorted({e for e in series if e < total} | {total})


def train_config(row: Row, budget: Budget, epochs: int) -> Any:
    from vaecore.config import TrainConfig

    steps_per_epoch = max(1, (budget.limit or 50_000) // row.train["batch_size"])
    values = {**row.train, "data": "mnist", "epochs": epochs, "limit": budget.limit, "val_limit": budget.val_limit,
              "threads": budget.threads, "device": budget.device, "keep_best": False, "seed": 0,
              "kl_warmup_steps": row.kl_warmup_epochs * steps_per_epoch, "log_every": 100}
    return TrainConfig(**values)


def train_to(row: Row, budget: Budget, folder: Path, epoch: int) -> float:
    """Train the row's run folder up to the end of `epoch` (fresh, or by the engine's exact resume); seconds spent."""
    from vaecore.data.datasets import load_dataset
    from vaecore.presets import build_preset
    from vaecore.training import run_folder as rf
    from vaecore.training.trainer import Trainer

    start = time.perf_counter()
    if rf.holds_run(folder):
        trainer = Trainer.resume(folder, epochs=epoch, progress=sys.stderr.isatty())
        if trainer.step >= trainer.total_steps:
            return 0.0
    else:
        config = train_config(row, budget, epoch)
        data = load_dataset("mnist", limit=budget.limit, seed=config.seed)
        model = build_preset(row.preset, input_shape=data.shape, dataset=data.name, seed=config.seed, **row.model)
        trainer = Trainer(model, data, config, folder, progress=sys.stderr.isatty())
    result = trainer.fit()
    if result.status != "finished":
        raise RuntimeError(f"{row.id}: training {result.status}: {result.message}")
    return time.perf_counter() - start


def git_commit() -> str | None:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def run_row(row: Row, budget: Budget, out: Path, runs: Path, commit: bool) -> dict[str, Any]:
    """Train the row to the budget with a curve point per epoch, then the final estimate; resumable at each step."""
    from vaecore.hub import load_folder
    from vaecore.utils import default_device

    path = out / f"{row.id}.json"
    res: dict[str, Any] = read_json(path) if path.is_file() else {}
    total = row_epochs(row, budget)
    if res.get("status") == "done" and result_epochs(res) == total:
        print(f"[repro] {row.id}: done at {total} epochs, skipped", flush=True)
        return res
    spec = {k: v for k, v in asdict(row).items() if k not in ("id", "extra")}
    res = {"row": row.id, **spec, "budget": asdict(budget), "epochs": total, "status": "training",
           "curve": [p for p in res.get("curve", []) if p["epoch"] <= total
                     and p["k"] == budget.curve_k and p["n_images"] == budget.curve_images],
           "train_seconds": res.get("train_seconds", 0.0), "eval": {"seed": EVAL_SEED, "test_seed": _test_seed()}}
    folder = runs / row.id
    x_curve = test_images(budget.curve_images)
    done = {p["epoch"] for p in res["curve"]}
    for epoch in curve_epochs(total):
        if epoch in done:
            continue
        seconds = train_to(row, budget, folder, epoch)
        res["train_seconds"] += seconds
        t0 = time.perf_counter()
        model = load_folder(folder, device=str(default_device(budget.device)))
        mean, se = mean_se(nll_per_image(model, x_curve, budget.curve_k).tolist())
        res["curve"].append({"epoch": epoch, "k": budget.curve_k, "n_images": budget.curve_images, "nll": mean,
                             "se": se, "train_seconds": seconds, "eval_seconds": time.perf_counter() - t0})
        res["curve"].sort(key=lambda p: p["epoch"])
        atomic_write_json(path, res)
        print(f"[repro] {row.id}: epoch {epoch}/{total}  −log p (K={budget.curve_k}, "
              f"{budget.curve_images} images) {mean:.2f} ± {se:.2f}  train {seconds:.0f} s", flush=True)
    train_to(row, budget, folder, total)  # a no-op unless the curve was there before the run folder
    model = load_folder(folder, device=str(default_device(budget.device)))
    k = budget.final_k or published_k(row)
    x = test_images(budget.final_images)
    t0 = time.perf_counter()
    values = nll_per_image(model, x, k)
    mean, se = mean_se(values.tolist())
    res["final"] = {"k": k, "n_images": int(x.shape[0]), "first_image": 0, "nll": mean, "se": se,
                    "eval_seconds": time.perf_counter() - t0, "per_image": [round(float(v), 4) for v in values]}
    res["status"] = "done"
    res["vaecore_commit"] = git_commit()
    atomic_write_json(path, res)
    print(f"[repro] {row.id}: final −log p (K={k}, {x.shape[0]} images) {mean:.2f} ± {se:.2f}", flush=True)
    if commit:
        rel = path.resolve().relative_to(ROOT)
        subprocess.run(["bash", str(COMMIT), f"reproduction board: {row.id} at {total} epochs", str(rel)],
                       cwd=ROOT, check=False)
    return res


def _test_seed() -> int:
    from vaecore.data.binarize import TEST_SEED

    return TEST_SEED


# the board --------------------------------------------------------------------------------------------------------
def load_results(out: Path = OUT) -> dict[str, dict[str, Any]]:
    """Every row's result file that exists, by row id."""
    return {p.stem: read_json(p) for p in sorted(out.glob("*.json"))}


def result_epochs(res: dict[str, Any]) -> int:
    """The epochs a result file's row was trained for."""
    return int(res.get("epochs") or res["budget"]["epochs"])


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _ours(res: dict[str, Any] | None) -> tuple[str, float | None, float | None]:
    if not res or "final" not in res:
        if res and res.get("curve"):
            p = res["curve"][-1]
            return f"training (epoch {p['epoch']}: {p['nll']:.2f} at K = {p['k']})", None, None
        return "not run", None, None
    values = res["final"]["per_image"]
    mean, se = mean_se(values)
    return f"{mean:.2f} ± {se:.2f}", mean, se


def _gap(mean: float | None, se: float | None, published: float | None) -> str:
    """Ours − published, with the SE of ours (the published value is taken as exact); the verdict rule: reached when
    ours is within 2 SE of it or below it."""
    if mean is None or se is None or published is None:
        return "–"
    d = mean - published
    verdict = "reached" if d <= 2 * se else "not reached"
    return f"{d:+.2f} ± {se:.2f} ({verdict})"


def paired(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """Mean of per-image differences a − b ± its SE, on the same test images; '–' unless both are final and share
    them."""
    if not a or not b or "final" not in a or "final" not in b:
        return "–"
    fa, fb = a["final"], b["final"]
    if (fa["n_images"], fa["first_image"]) != (fb["n_images"], fb["first_image"]) or \
            a["eval"]["test_seed"] != b["eval"]["test_seed"]:
        return "– (different test images)"
    mean, se = mean_se([x - y for x, y in zip(fa["per_image"], fb["per_image"], strict=True)])
    verdict = "lower" if mean < -2 * se else "higher" if mean > 2 * se else "no difference at 2 SE"
    return f"{mean:+.2f} ± {se:.2f} ({verdict})"


def _budget_line(results: dict[str, dict[str, Any]]) -> str:
    budgets = sorted({result_epochs(r) for r in results.values()})
    finals = sorted({(r["final"]["n_images"], r["final"]["first_image"]) for r in results.values() if "final" in r})
    curves = sorted({(p["k"], p["n_images"]) for r in results.values() for p in r.get("curve", [])})
    epochs = " and ".join(str(b) for b in budgets) or "–"
    fin = "; ".join(f"the first {n} test images" for n, _ in finals) or "–"
    cur = "; ".join(f"K = {k} on the first {n} test images" for k, n in curves) or "–"
    return (f"**Budget**: {epochs} epochs per row (the same for every row; each row's published budget is in its "
            f"line), on 50,000 training images of our MNIST split (10,000 held out for validation). Final −log p(x): "
            f"each row's published K, on {fin} (not the full 10,000, to fit this machine: 2 shared CPU cores), ± the "
            f"standard error over those images. Learning curve: {cur}, after each epoch. Test images binarized once "
            f"with seed TEST_SEED = {_test_seed()} (`vaecore.data.binarize`), the same images for every row.")


def board(results: dict[str, dict[str, Any]]) -> list[str]:
    """The board as Markdown lines, from the result files (and the published values of `reference`)."""
    lines = [_budget_line(results), "",
             "#### IWAE paper, Table 1 (MNIST, one stochastic layer, dynamically binarized)", "",
             f"Source: {reproduction_source('iwae')}. −log p(x) in nats with K = 5000, lower is better. \"Reached\" "
             "when ours is below the published value or within 2 SE of it.", "",
             "| k | objective | ours (epochs) | −log p(x), ours | published (3280 epochs) | ours − published |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in [r for r in ROWS if r.group == "iwae"]:
        res = results.get(row.id)
        text, mean, se = _ours(res)
        pub = REPRODUCTION_MNIST_NLL[row.id]["value"]
        epochs = result_epochs(res) if res else "–"
        k = row.model["k"]
        lines.append(f"| {k} | {row.label} | {epochs} | {text} | {_fmt(pub)} | {_gap(mean, se, pub)} |")
    lines += ["", "Paired differences on the same test images (IWAE − VAE at the same k; the paper's claim is that "
              "IWAE is lower at k = 5 and 50). A difference counts when it exceeds 2 SE:", "",
              "| k | IWAE − VAE (nats) | published |", "| --- | --- | --- |"]
    for k in (5, 50):
        pub = REPRODUCTION_MNIST_NLL[f"iwae-k{k}"]["value"] - REPRODUCTION_MNIST_NLL[f"vae-k{k}"]["value"]
        lines.append(f"| {k} | {paired(results.get(f'iwae-k{k}'), results.get(f'vae-k{k}'))} | {pub:+.2f} |")
    lines += ["", "#### Pythae's reproductions (MNIST)", "",
              f"Source: {reproduction_source('pythae')}; the networks, optimizers, schedules and K of its "
              "`examples/scripts/reproducibility/` scripts. \"Pythae\" is the value Pythae obtained, \"paper\" the "
              "value it compares with.", "",
              "| model | data | K | ours (epochs) | −log p(x), ours | Pythae (epochs) | paper | ours − Pythae | "
              "differences from Pythae's setting |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in [r for r in ROWS if r.group == "pythae"]:
        res = results.get(row.id)
        text, mean, se = _ours(res)
        ref = REPRODUCTION_MNIST_NLL[row.id]
        epochs = result_epochs(res) if res else "–"
        data = {"dynamic": "dyn. binarized", "static": "binarized once"}[row.train["binarize"]]
        lines.append(f"| {row.label} | {data} | {published_k(row)} | {epochs} | {text} | {_fmt(ref['value'])} "
                     f"({row.published_epochs}) | {_fmt(ref.get('paper'))} | {_gap(mean, se, ref['value'])} | "
                     f"{row.notes or '–'} |")
    lines += ["", *curve_table(results)]
    return lines


def curve_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """The learning curve: −log p(x) on the curve subset after each epoch, per row."""
    have = [r for r in ROWS if results.get(r.id, {}).get("curve")]
    if not have:
        return ["#### Learning curves", "", "No row has a curve point yet."]
    epochs = sorted({p["epoch"] for r in have for p in results[r.id]["curve"]})
    ks = sorted({(p["k"], p["n_images"]) for r in have for p in results[r.id]["curve"]})
    how = "; ".join(f"K = {k}, first {n} test images" for k, n in ks)
    lines = ["#### Learning curves", "",
             f"−log p(x) after each epoch ({how}; SE over those images about ±1 nat, differences between epochs of "
             "one row are far more precise, being on the same images). A row still falling steeply at its last epoch "
             "is far from convergence; the published values come from 80 to 3280 epochs.", "",
             "| row | " + " | ".join(str(e) for e in epochs) + " | train s/epoch |",
             "| --- | " + " | ".join("---" for _ in epochs) + " | --- |"]
    for row in have:
        pts = {p["epoch"]: p for p in results[row.id]["curve"]}
        secs = [p["train_seconds"] for p in pts.values() if p["train_seconds"] > 0]
        per = f"{sum(secs) / len(secs):.0f}" if secs else "–"
        lines.append(f"| {row.id} | " + " | ".join(_fmt(pts[e]["nll"], 1) if e in pts else "" for e in epochs)
                     + f" | {per} |")
    return lines


def write_report(out: Path = OUT, doc: Path = DOC, results_md: Path | None = RESULTS) -> str:
    """docs/reproduction.md and the board's section of checkpoints/RESULTS.md, from the result files in `out`."""
    results = load_results(out)
    text = "\n".join(board(results)) + "\n"
    head = ("# Reproduction board\n\nGenerated by `python experiments/reproduction.py --report` from "
            f"`{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/*.json` (written by the training run "
            "`python experiments/reproduction.py --epochs N`); nothing here is typed by hand. The full published "
            "budgets run with `bash bench/gpu_session.sh reproduction` on a GPU.\n\n")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(head + text)
    if results_md is not None:
        write_results_section(results_md, out)
    return text


def results_section(out: Path = OUT) -> list[str]:
    """The board as a marked section of checkpoints/RESULTS.md (experiments/zoo_table.py includes it too)."""
    return [BEGIN, "#### Reproduction board", "", "Generated by `python experiments/reproduction.py --report`; see "
            "`docs/reproduction.md`.", "", *board(load_results(out)), END]


def write_results_section(path: Path, out: Path = OUT) -> None:
    """Replace (or append) the board's marked section of RESULTS.md, leaving the rest of the file as it is."""
    section = "\n".join(results_section(out))
    old = path.read_text() if path.is_file() else ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + section + "\n"
    path.write_text(new)


# command line -----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", help="training epochs per row (the same for every row), or 'published': each row's "
                   "published budget (3280 epochs for the IWAE rows; the GPU script's full run)")
    p.add_argument("--rows", help=f"comma-separated row ids (default: all, in this order: {', '.join(ORDER)})")
    p.add_argument("--report", action="store_true", help="write the board from the result files and stop")
    p.add_argument("--out", type=Path, default=OUT, help="folder of the result files")
    p.add_argument("--runs", type=Path, default=RUNS, help="folder of the run folders")
    p.add_argument("--doc", type=Path, default=DOC, help="the board's Markdown file (with --report)")
    p.add_argument("--results-md", type=Path, default=RESULTS, help="RESULTS.md whose board section --report updates")
    p.add_argument("--curve-k", type=int, default=CURVE_K)
    p.add_argument("--curve-images", type=int, default=CURVE_IMAGES)
    p.add_argument("--final-images", type=int, default=FINAL_IMAGES)
    p.add_argument("--final-k", type=int, help="K of the final estimate for every row (default: each row's published)")
    p.add_argument("--limit", type=int, help="training images (default: all 50,000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true",
                   help="a smoke run: 1 epoch on 100 images, K = 4 on 8 test images (override with the flags above)")
    p.add_argument("--commit", action="store_true", help="commit each finished row with /work/coord/commit_results.sh")
    args = p.parse_args(argv)
    if args.report:
        write_report(args.out, args.doc, args.results_md)
        print(f"[repro] wrote {args.doc} and the board section of {args.results_md}")
        return
    rows = [r.strip() for r in args.rows.split(",")] if args.rows else ORDER
    unknown = [r for r in rows if r not in ROW_BY_ID]
    if unknown:
        p.error(f"unknown row(s) {unknown}; choose from {', '.join(ORDER)}")
    if args.epochs not in (None, "published") and not (args.epochs.isdigit() and int(args.epochs) >= 1):
        p.error(f"--epochs must be a whole number >= 1 or 'published', got {args.epochs!r}")
    epochs = None if args.epochs in (None, "published") else int(args.epochs)
    if args.tiny:
        budget = Budget(epochs=epochs or 1, curve_k=4, curve_images=8, final_images=8, final_k=args.final_k or 4,
                        limit=args.limit or 100, val_limit=20, threads=args.threads, device=args.device)
    else:
        if args.epochs is None:
            p.error("--epochs is required (a number, or 'published'), or --report / --tiny")
        budget = Budget(epochs=epochs, curve_k=args.curve_k, curve_images=args.curve_images,
                        final_images=args.final_images, final_k=args.final_k, limit=args.limit,
                        threads=args.threads, device=args.device)
    if budget.threads:
        torch.set_num_threads(budget.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for rid in rows:
        run_row(ROW_BY_ID[rid], budget, args.out, args.runs, args.commit)


if __name__ == "__main__":
    main()

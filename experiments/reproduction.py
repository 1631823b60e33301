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
plain git (only those paths). `--report` writes docs/reproduction.md and the board's section of
checkpoints/RESULTS.md from the result files alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vaecore.evaluation.reference import REPRODUCTION_MNIST_NLL, reproduction_source  # noqa: E402
from vaecore.evaluation.reproduction import (  # noqa: E402
    ORDER,
    ROW_BY_ID,
    ROWS,
    Row,
    board_rows,
    budget_text,
    curve_points,
    difference_verdict,
    final_summary,
    load_results,
    mean_se,
    paired_difference,
    published_k,
    result_epochs,
    unrepresentable_fraction,
)
from vaecore.utils import atomic_write_json, read_json  # noqa: E402

OUT = ROOT / "experiments" / "results" / "reproduction"
RUNS = ROOT / "runs" / "reproduction"
DOC = ROOT / "docs" / "reproduction.md"
RESULTS = ROOT / "checkpoints" / "RESULTS.md"
CURVE_K = 200
CURVE_IMAGES = 1000
FINAL_IMAGES = 2000
EVAL_SEED = 0
BEGIN, END = "<!-- reproduction-board:begin -->", "<!-- reproduction-board:end -->"


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


# evaluation --------------------------------------------------------------------------------------------------------
def test_images(n: int) -> torch.Tensor:
    """The first n MNIST test images of the test set binarized once with the fixed test seed (float32 in {0, 1})."""
    from vaecore.data.binarize import binarized_split
    from vaecore.data.datasets import load_dataset

    return binarized_split(load_dataset("mnist").split("test")[0], "test")[:n]


def nll_per_image(model: torch.nn.Module, x: torch.Tensor, k: int, seed: int = EVAL_SEED) -> torch.Tensor:
    """−log p(x) per image in nats, the engine's IWAE estimate with K = k importance samples (float64, CPU); a
    progress bar on a terminal."""
    from vaecore.evaluation.metrics import iwae_log_likelihood

    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=-(-x.shape[0] // 100), unit="batch", desc=f"−log p, K = {k}", leave=False)
        progress = lambda stage, done, total: bar.update(done - bar.n)  # noqa: E731
    try:
        return -iwae_log_likelihood(model, x.to(device), k=k, batch_size=100, generator=gen, progress=progress).cpu()
    finally:
        if progress is not None:
            bar.close()


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


def train_config(row: Row, budget: Budget, epochs: int, n_train: int) -> Any:
    """The row's TrainConfig for `epochs` epochs over `n_train` training images (the KL warm-up is in epochs)."""
    from vaecore.config import TrainConfig

    steps_per_epoch = max(1, n_train // row.train["batch_size"])
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
        data = load_dataset("mnist", limit=budget.limit, seed=0)
        config = train_config(row, budget, epoch, data.x_train.shape[0])
        model = build_preset(row.preset, input_shape=data.shape, dataset=data.name, seed=config.seed, **row.model)
        trainer = Trainer(model, data, config, folder, progress=sys.stderr.isatty())
    result = trainer.fit()
    if result.status != "finished":
        raise RuntimeError(f"{row.id}: training {result.status}: {result.message}")
    return time.perf_counter() - start


def git_commit() -> str | None:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def run_row(row: Row, budget: Budget, out: Path, runs: Path, commit: bool, rescore: bool = False) -> dict[str, Any]:
    """Train the row to the budget with a curve point per epoch, then the final estimate; resumable at each step.
    `rescore` recomputes the final estimate of a finished row from its run folder (no training)."""
    from vaecore.hub import load_folder
    from vaecore.utils import default_device

    path = out / f"{row.id}.json"
    res: dict[str, Any] = read_json(path) if path.is_file() else {}
    if rescore and res.get("status") == "done":
        res = {**res, "status": "training"}
        res.pop("final", None)
    total = row_epochs(row, budget)
    if res.get("status") == "done" and result_epochs(res) == total:
        print(f"[repro] {row.id}: done at {total} epochs, skipped", flush=True)
        return res
    spec = {k: v for k, v in asdict(row).items() if k != "id"}
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
    print(f"[repro] {row.id}: final −log p with K = {k} on {x.shape[0]} test images ...", flush=True)
    t0 = time.perf_counter()
    values = nll_per_image(model, x, k)
    mean, se = mean_se(values.tolist())
    res["final"] = {"k": k, "n_images": int(x.shape[0]), "first_image": 0, "nll": mean, "se": se,
                    "eval_seconds": time.perf_counter() - t0, "per_image": [round(float(v), 4) for v in values],
                    "unrepresentable": unrepresentable_fraction(model, x[:100])}
    res["status"] = "done"
    res["vaecore_commit"] = git_commit()
    atomic_write_json(path, res)
    print(f"[repro] {row.id}: final −log p (K={k}, {x.shape[0]} images) {mean:.2f} ± {se:.2f}", flush=True)
    if commit:  # the row's file and the board regenerated from every file in `out`
        write_report(out, DOC, results_md=None)
        paths = [str(f.resolve().relative_to(ROOT)) for f in (path, DOC)]
        from zoo_common import git_commit as commit_paths

        commit_paths(ROOT, paths, f"reproduction board: {row.id} at {total} epochs")
    return res


def _test_seed() -> int:
    from vaecore.data.binarize import TEST_SEED

    return TEST_SEED


# the board --------------------------------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _ours(item: dict[str, Any]) -> str:
    if item["status"] == "done" and not item["valid"]:
        return (f"invalid ({item['nll']:.2f}: {100 * item['unrepresentable']:.0f} % of the posterior's draws saturate "
                "at the ball's boundary in floating point, so the weights are not p(x, z)/q(z|x))")
    if item["status"] == "done":
        return f"{item['nll']:.2f} ± {item['se']:.2f}"
    if item["status"] == "training":
        return f"training (epoch {item['latest_epoch']}: {item['latest_nll']:.2f} on the curve subset)"
    return "not run"


def _gap(item: dict[str, Any]) -> str:
    if item["gap"] is None:
        return "–"
    return f"{item['gap']:+.2f} ± {item['se']:.2f} ({'reached' if item['reached'] else 'not reached'})"


def paired(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """'mean ± SE (verdict)' of the per-image differences a − b, '–' unless both are final."""
    if not a or not b or "final" not in a or "final" not in b:
        return "–"
    try:
        mean, se = paired_difference(a, b)
    except ValueError:
        return "– (different test images)"
    return f"{mean:+.2f} ± {se:.2f} ({difference_verdict(mean, se)})"


def board(results: dict[str, dict[str, Any]]) -> list[str]:
    """The board as Markdown lines, from the result files (and the published values of `reference`)."""
    lines = [budget_text(results), "",
             "#### IWAE paper, Table 1 (MNIST, one stochastic layer, dynamically binarized)", "",
             f"Source: {reproduction_source('iwae')}. −log p(x) in nats with K = 5000, lower is better.", "",
             "| k | objective | ours (epochs) | −log p(x), ours | published (3280 epochs) | ours − published |",
             "| --- | --- | --- | --- | --- | --- |"]
    for item in board_rows(results, "iwae"):
        k = ROW_BY_ID[item["row"]].model["k"]
        lines.append(f"| {k} | {item['label']} | {item['epochs'] or '–'} | {_ours(item)} | "
                     f"{_fmt(item['published'])} | {_gap(item)} |")
    lines += ["", "Paired differences on the same test images (IWAE − VAE at the same k; the paper's claim is that "
              "IWAE is lower at k = 5 and 50). A difference counts when it exceeds 2 SE:", "",
              "| k | IWAE − VAE (nats), ours | published |", "| --- | --- | --- |"]
    for k in (5, 50):
        pub = REPRODUCTION_MNIST_NLL[f"iwae-k{k}"]["value"] - REPRODUCTION_MNIST_NLL[f"vae-k{k}"]["value"]
        lines.append(f"| {k} | {paired(results.get(f'iwae-k{k}'), results.get(f'vae-k{k}'))} | {pub:+.2f} |")
    lines += ["", "#### Pythae's reproductions (MNIST)", "",
              f"Source: {reproduction_source('pythae')}; the networks, optimizers, schedules and K of its "
              "`examples/scripts/reproducibility/` scripts. \"Pythae\" is the value Pythae obtained (mean of 5 "
              "evaluation rounds on the full test set), \"paper\" the value it compares with.", "",
              "| model | data | K | ours (epochs) | −log p(x), ours | Pythae (epochs) | paper | ours − Pythae | "
              "differences from Pythae's setting |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for item in board_rows(results, "pythae"):
        data = {"dynamic": "dyn. binarized", "static": "binarized once"}[item["binarize"]]
        lines.append(f"| {item['label']} | {data} | {item['k']} | {item['epochs'] or '–'} | {_ours(item)} | "
                     f"{_fmt(item['published'])} ({item['published_epochs']}) | {_fmt(item['paper'])} | "
                     f"{_gap(item)} | {item['notes'] or '–'} |")
    lines += ["", *curve_table(results)]
    return lines


def curve_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """The learning curve: −log p(x) on the curve subset after each epoch, per row."""
    points = curve_points(results)
    if not points:
        return ["#### Learning curves", "", "No row has a curve point yet."]
    epochs = sorted({p["epoch"] for p in points})
    how = "; ".join(f"K = {k}, first {n:,} test images" for k, n in sorted({(p["k"], p["n_images"]) for p in points}))
    lines = ["#### Learning curves", "",
             f"−log p(x) after each epoch ({how}; its SE over images is about 1 nat, but differences between epochs of "
             "one row are far more precise, being on the same images). A row still falling steeply at its last epoch "
             "is far from convergence; the published values come from 80 to 3280 epochs.", "",
             "| row | " + " | ".join(str(e) for e in epochs) + " | train s/epoch |",
             "| --- | " + " | ".join("---" for _ in epochs) + " | --- |"]
    for row in ROWS:
        pts = {p["epoch"]: p for p in points if p["row"] == row.id}
        if not pts:
            continue
        secs = [p["train_seconds"] for p in pts.values() if p["train_seconds"]]
        per = f"{sum(secs) / len(secs):.0f}" if secs else "–"
        fin = final_summary(results.get(row.id))
        name = f"{row.id} (invalid: draws saturate)" if fin and not fin["valid"] else row.id
        lines.append(f"| {name} | " + " | ".join(_fmt(pts[e]["nll"], 1) if e in pts else "" for e in epochs)
                     + f" | {per} |")
    return lines


def write_report(out: Path = OUT, doc: Path = DOC, results_md: Path | None = RESULTS) -> str:
    """docs/reproduction.md and the board's section of checkpoints/RESULTS.md, from the result files in `out`."""
    results = load_results(out)
    text = "\n".join(board(results)) + "\n"
    source = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    head = "\n".join([
        "# Reproduction board", "",
        f"Generated by `python experiments/reproduction.py --report` from `{source}/*.json`, the files the training "
        "run `python experiments/reproduction.py --epochs N` writes; nothing below is typed by hand. The numbers the "
        "field compares VAEs on — test −log p(x) of binarized MNIST in nats — with the published value beside ours, "
        "at the settings of the publication as far as they are stated, and at the budget this machine allows.", "",
        "## How each number is made", "",
        "- **Data.** Our MNIST split: 50,000 training images, 10,000 validation, 10,000 test. *Dynamically binarized* "
        "rows draw every training pixel afresh from Bernoulli(grey level) each epoch (`TrainConfig.binarize = "
        "\"dynamic\"`; the draw of epoch e is a function of the run's seed and e, so a resumed run sees the same "
        "images); *binarized once* rows use one such draw for every epoch (Pythae's \"Binary MNIST\" rows use "
        "Larochelle's fixed binarization, which is not in this project). Validation and test images are binarized "
        "once each with fixed seeds (`vaecore.data.binarize`), the same for every row.",
        "- **Networks and training.** Each row's network is a named architecture of `vaecore.components.nets` "
        "(`iwae-mlp`: 784-200-200-50 tanh, Glorot init; `vae-mlp-400`, `vamp-mlp`, `hvae-mlp`, `svae-mlp`, "
        "`pvae-mlp`), its optimizer, learning rate, schedule (`multistep` milestones) and batch size those of the "
        "publication (`vaecore/evaluation/reproduction.py`, `ROWS`). Every row trains the same number of epochs "
        "here, each with its own schedule cut at that budget.",
        "- **The estimate.** −log p(x) per test image is the engine's IWAE estimate "
        "(`vaecore.evaluation.metrics.iwae_log_likelihood`) with the row's published number of importance samples "
        "K, one value per image, stored in the row's file; the board shows their mean ± the standard error over "
        "images, and paired differences between rows on the same images.",
        "- **The curve.** After every epoch, the same estimate with K = 200 on the first 1,000 test images.",
        "- **Invalid estimates.** The importance weights are p(x, z)/q(z|x) only if each draw z is the point the "
        "densities are evaluated at. For a posterior on the Poincaré ball the check is a round trip: the tangent "
        "vector drawn must come back from the point it reaches. When more than 1 % of draws fail it (they saturate at "
        "the ball's boundary in floating point), the row's number is shown as invalid and not compared.",
        "- **Full budgets.** `bash bench/gpu_session.sh reproduction` trains every row for its published epochs "
        "(3280 for the IWAE rows) and scores all 10,000 test images, resumably, when a GPU is lent.", "",
        "## The board", "", ""])
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
    p.add_argument("--commit", action="store_true",
                   help="commit each finished row's file and the regenerated docs/reproduction.md (git, only those "
                        "files; RESULTS.md's section is refreshed by --report)")
    p.add_argument("--rescore", action="store_true",
                   help="recompute the final estimate of finished rows from their run folders (no training)")
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
        run_row(ROW_BY_ID[rid], budget, args.out, args.runs, args.commit, args.rescore)


if __name__ == "__main__":
    main()

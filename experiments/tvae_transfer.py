"""T-VAE paper (004) Table 1 and Figure 2: KNN accuracy on latent means under a domain shift.

    python experiments/tvae_transfer.py --epochs 2 --latents 10 --datasets mnist
    python experiments/tvae_transfer.py --max-steps 20 --limit 1000 --n-test 500 --latents 10   # CI smoke run

Trains VAE, VAE+ (the VAE on images augmented with the T-VAE's transformations) and T-VAE for
each latent size on MNIST and Fashion-MNIST, then scores the latent means with a 5-NN classifier:

* M-M / F-F: model trained on MNIST / Fashion-MNIST; KNN fitted on that dataset's training
  latents and tested on its test latents (no domain shift).
* M-Aff / F-Aff: model trained on MNIST / Fashion-MNIST; KNN fitted on the latents of
  affine-transformed MNIST training digits and tested on affine-transformed MNIST test digits.
  `transforms.affine_test_set` (rotation ±20°, shift ±0.1, scale 0.8-1.2, shear ±20°; seed 0
  for the test images, seed 1 for the KNN training images) stands in for AffNIST, which is not
  available offline; it is milder than AffNIST (40x40 canvas, larger shifts).
* Figure 2: Aff accuracy as a function of the number of labelled KNN training latents, the mean
  over `--repeats` random labelled subsets.

Writes `<out>.md` and `<out>.json` (default experiments/results/tvae_transfer) with the paper's
published numbers beside ours.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vaecore  # noqa: E402
from vaecore.data import transforms  # noqa: E402
from vaecore.evaluation.metrics import knn_accuracy, latent_means  # noqa: E402
from vaecore.evaluation.reference import TVAE_PAPER_MODELS  # noqa: E402
from vaecore.files import METRICS  # noqa: E402
from vaecore.hub import load_folder  # noqa: E402
from vaecore.presets import get_preset, model_config  # noqa: E402
from vaecore.training import run_folder as rf  # noqa: E402
from vaecore.training.trainer import read_metrics  # noqa: E402
from vaecore.utils import atomic_write_bytes, atomic_write_json  # noqa: E402

COLUMNS = ["M-Aff", "M-M", "F-Aff", "F-F"]
MODELS = TVAE_PAPER_MODELS
SOURCES = {"mnist": "M", "fashion-mnist": "F"}

# Table 1 of the paper (KNN accuracy in %, latent means, 200 epochs).
PAPER_TABLE1: dict[tuple[str, int], dict[str, float | None]] = {
    ("vae", 10): {"M-Aff": 55.9, "M-M": 96.2, "F-Aff": 32.8, "F-F": 81.7},
    ("vae-plus", 10): {"M-Aff": 70.2, "M-M": 96.7, "F-Aff": 36.3, "F-F": 82.2},
    ("tvae", 10): {"M-Aff": 73.5, "M-M": 96.6, "F-Aff": 55.1, "F-F": 84.0},
    ("vae", 100): {"M-Aff": 66.3, "M-M": 96.2, "F-Aff": 43.1, "F-F": 82.6},
    ("vae-plus", 100): {"M-Aff": 79.2, "M-M": 97.4, "F-Aff": 43.3, "F-F": 82.7},
    ("tvae", 100): {"M-Aff": 90.6, "M-M": 98.1, "F-Aff": 81.2, "F-F": 86.9},
}
# Sec. 3: marginal likelihood on the MNIST test set (nats), latent size not stated.
PAPER_MNIST_NLL = {"vae": 93.0, "vae-plus": 94.0, "tvae": 92.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2, help="training epochs per model (paper: 200)")
    p.add_argument("--max-steps", type=int, default=None, help="cap on optimiser steps per model")
    p.add_argument("--limit", type=int, default=None, help="training images per dataset (default: all 50k)")
    p.add_argument("--n-test", type=int, default=10_000, help="test images scored by the KNN")
    p.add_argument("--n-knn-train", type=int, default=10_000, help="labelled training latents of the KNN")
    p.add_argument("--latents", type=int, nargs="+", default=[10, 100])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"], choices=list(SOURCES))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--fashion-dir", default=None,
                   help="folder with the Fashion-MNIST IDX files (default ../shared/data/fashion-mnist "
                        "beside the repo, or /work/shared/data/fashion-mnist)")
    p.add_argument("--labelled", type=int, nargs="+", default=[10, 100, 1000, 10_000],
                   help="labelled KNN training sizes for the Figure 2 curve")
    p.add_argument("--repeats", type=int, default=5, help="random labelled subsets per Figure 2 point (paper: 20)")
    p.add_argument("--k", type=int, default=5, help="neighbours of the KNN")
    p.add_argument("--batch-size", type=int, default=100, help="paper: 100")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (paper: 1e-4, halved every 50 epochs)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="training seeds; the table reports the mean over seeds and lists each seed's value")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--work-dir", default=None, help="where run folders go (default: a temporary folder); a run "
                   "finished there with the same settings is reused, a killed one resumed")
    p.add_argument("--results-dir", default=str(ROOT / "experiments" / "results" / "tvae_transfer_runs"),
                   help="one JSON per trained model with its scores; a model scored there with the same settings "
                        "is not trained again (commit them, and a later session continues where this one stopped)")
    p.add_argument("--commit", action="store_true", help="git-commit each model's result file as it is written")
    p.add_argument("--scored-only", action="store_true",
                   help="train nothing: report the (dataset, model, latent) cells whose every seed is already "
                        "scored in --results-dir, the others as not run (to combine runs made by several processes)")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "tvae_transfer"),
                   help="output path without extension: writes <out>.md and <out>.json")
    return p.parse_args(argv)


def fashion_dir(arg: str | None) -> Path | None:
    candidates = [Path(arg)] if arg else [ROOT.parent / "shared" / "data" / "fashion-mnist",
                                         Path("/work/shared/data/fashion-mnist")]
    return next((c for c in candidates if c.is_dir()), None)


def train_config(preset: str, ds: vaecore.Dataset, args: argparse.Namespace, seed: int) -> vaecore.TrainConfig:
    """The preset's training defaults (VAE+: augmentation) with this experiment's budget."""
    return vaecore.TrainConfig(**{
        **get_preset(preset).train, "data": ds.name, "limit": args.limit, "epochs": args.epochs,
        "max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr, "seed": seed,
        "log_every": 50, "checkpoint_every": 1000, "val_limit": 500, "device": "cpu"})


def run_settings(preset: str, latent: int, ds: vaecore.Dataset, args: argparse.Namespace, seed: int) -> dict:
    """Everything a model's scores depend on: what identifies its file in --results-dir."""
    return json.loads(json.dumps({
        "preset": preset, "latent": latent, "dataset": ds.name, "train": train_config(preset, ds, args, seed).to_dict(),
        "eval": {"n_test": args.n_test, "n_knn_train": args.n_knn_train, "k": args.k, "labelled": args.labelled,
                 "repeats": args.repeats}}))


def run_name(ds: vaecore.Dataset, preset: str, latent: int, seed: int) -> str:
    """The run folder's (and its result file's) name."""
    return f"{ds.name}-{preset}-z{latent}-seed{seed}"


def train_one(preset: str, latent: int, ds: vaecore.Dataset, args: argparse.Namespace, seed: int, out_dir: Path
              ) -> tuple[Any, dict[str, Any]]:
    """Train one model; returns it and its run facts."""
    torch.manual_seed(seed)
    cfg = model_config(preset, latent_dim=latent, input_shape=ds.shape, dataset=ds.name)
    model = vaecore.build_model(cfg)
    tc = train_config(preset, ds, args, seed)
    t0 = time.perf_counter()
    records = read_metrics(out_dir) if (out_dir / METRICS).is_file() else []
    if records and records[-1].get("event") == "finished" and rf.read_train_json(out_dir) == tc.to_dict():
        model, step = load_folder(out_dir), int(records[-1]["step"])  # finished before: reuse it
        print(f"  reusing the finished run in {out_dir}", file=sys.stderr, flush=True)
    else:
        trainer = (vaecore.Trainer.resume(out_dir, dataset=ds) if rf.holds_run(out_dir)
                   else vaecore.Trainer(model, ds, tc, out_dir))  # a killed run continues from its checkpoint
        result = trainer.fit()
        model, step = trainer.model, result.step
    steps_per_epoch = max(1, len(ds.x_train) // args.batch_size)
    facts = {"steps": step, "epochs": round(step / steps_per_epoch, 3),
             "train_seconds": round(time.perf_counter() - t0, 1), "run_dir": str(out_dir)}
    return model, facts


def evaluate(model: Any, source: vaecore.Dataset, aff: dict[str, torch.Tensor], args: argparse.Namespace,
             seed: int) -> dict[str, Any]:
    """Same-domain and Aff KNN accuracy, the Figure 2 curve on Aff, and the source test -ELBO."""
    n_knn = min(args.n_knn_train, len(source.x_train))
    z_tr = latent_means(model, source.x_train[:n_knn])
    z_te = latent_means(model, source.x_test[:args.n_test])
    same = knn_accuracy(z_tr, source.y_train[:n_knn], z_te, source.y_test[:args.n_test], args.k)
    za_tr = latent_means(model, aff["x_train"])
    za_te = latent_means(model, aff["x_test"])
    shifted = knn_accuracy(za_tr, aff["y_train"], za_te, aff["y_test"], args.k)
    curve: dict[str, Any] = {}
    gen = np.random.default_rng(seed)
    for n in args.labelled:
        if n > len(za_tr):
            continue
        accs = []
        for _ in range(args.repeats if n < len(za_tr) else 1):
            idx = torch.as_tensor(gen.choice(len(za_tr), size=n, replace=False))
            accs.append(knn_accuracy(za_tr[idx], aff["y_train"][idx], za_te, aff["y_test"], args.k))
        curve[str(n)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "runs": len(accs)}
    model.eval()
    with torch.no_grad():
        x = source.x_test[:min(args.n_test, 2000)]
        neg_elbo = float(-torch.cat([model.elbo(x[i:i + 500]) for i in range(0, len(x), 500)]).mean())
    return {"same": same, "aff": shifted, "curve": curve, "test_neg_elbo": neg_elbo}


def saved_score(preset: str, latent: int, ds: vaecore.Dataset, args: argparse.Namespace, seed: int
                ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A model's scores and run facts from --results-dir, if it was scored there with these settings."""
    path = Path(args.results_dir) / f"{run_name(ds, preset, latent, seed)}.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved.get("settings") != run_settings(preset, latent, ds, args, seed):
        return None
    return saved["result"], saved["facts"]


def scored_run(preset: str, latent: int, ds: vaecore.Dataset, aff: dict[str, torch.Tensor],
               args: argparse.Namespace, seed: int, run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's scores and run facts: read from --results-dir when scored there with these settings, else
    trained (or resumed from `run_dir`), evaluated and written there (and committed with --commit)."""
    saved = saved_score(preset, latent, ds, args, seed)
    if saved is not None:
        print(f"  scored before: {run_dir.name}", file=sys.stderr, flush=True)
        return saved
    path = Path(args.results_dir) / f"{run_dir.name}.json"
    settings = run_settings(preset, latent, ds, args, seed)
    model, facts = train_one(preset, latent, ds, args, seed, run_dir)
    res = evaluate(model, ds, aff, args, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"settings": settings, "result": res, "facts": facts})
    if args.commit:
        from zoo_common import git_commit

        git_commit(ROOT, [str(path.relative_to(ROOT))],
                   f"T-VAE transfer: {MODELS[preset]} z={latent} on {ds.name}, seed {seed}, scored")
    return res, facts


def mean_curve(curves: list[dict[str, Any]]) -> dict[str, Any]:
    """Average Figure 2 curves over seeds (the s.d. pools the labelled subsets of every seed)."""
    out = {}
    for n in curves[0]:
        means = [c[n]["mean"] for c in curves]
        mean = float(np.mean(means))
        pooled = np.mean([c[n]["std"] ** 2 + (c[n]["mean"] - mean) ** 2 for c in curves])
        out[n] = {"mean": mean, "std": float(np.sqrt(pooled)), "per_seed": means,
                  "runs": sum(c[n]["runs"] for c in curves)}
    return out


def epochs_used(runs: list[dict[str, Any]]) -> str:
    """The training length actually run, e.g. '2 epochs (1000 steps) per model'."""
    if not runs:
        return "no training"
    epochs = sorted({r["epochs"] for r in runs})
    steps = sorted({r["steps"] for r in runs})
    e = f"{epochs[0]:g}" if len(epochs) == 1 else f"{epochs[0]:g}-{epochs[-1]:g}"
    st = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
    return f"{e} epochs ({st} steps) per model"


def fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.1f}"


def table1_lines(report: dict[str, Any]) -> list[str]:
    """Table 1 as markdown lines: ours (mean ± s.d. over seeds) / the paper's, per model and column."""
    lines = ["| model | z | " + " | ".join(COLUMNS) + " | Bernoulli −ELBO on grey levels (nats, not an NLL) M / F |",
             "| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " | --- |"]
    for row in report["table"]:
        cells = []
        for col in COLUMNS:
            ours, paper = row["ours"].get(col), row["paper"].get(col)
            seeds = row["per_seed"].get(col, [])
            spread = f" ± {100 * float(np.std(seeds, ddof=1)):.1f}" if len(seeds) > 1 else ""
            cells.append(f"{fmt(ours)}{spread} / {fmt(paper / 100 if paper is not None else None)}")
        elbo = " / ".join(fmt(row["test_neg_elbo"].get(src), pct=False) for src in ("M", "F"))
        lines.append(f"| {row['name']} | {row['latent']} | " + " | ".join(cells) + f" | {elbo} |")
    return lines + ["", "– = not run here. ± is the s.d. over training seeds. The last column is the Bernoulli "
                    "decoder's −ELBO on the grey-level test images: a cross-entropy bound, not a log-probability of "
                    "them, so it is not comparable with the paper's marginal likelihoods (Sec. 3, \"a marginal "
                    "likelihood of ~ 92 nats on the test set\", estimator and binarization not stated): VAE ~93, "
                    "VAE+ ~94, T-VAE ~92 nats.", ""]


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = ["# T-VAE transfer: KNN accuracy on latent means (paper 004, Table 1 and Figure 2)", "",
             f"Command: `{s['command']}`", "",
             f"Training: {s['epochs_used']}; batch {s['batch_size']}, Adam lr {s['lr']}, "
             f"seeds {', '.join(map(str, s['seeds']))}, "
             f"training images: {', '.join(f'{n} ({k})' for k, n in s['train_images'].items())}. "
             "The paper trains 200 epochs at lr 1e-4 (halved every 50 epochs).",
             f"Evaluation: {s['k']}-NN on encoder means; {s['n_knn_train']} labelled training latents, "
             f"{s['n_test']} test images. Aff = `transforms.affine_test_set` of MNIST (test seed 0, KNN-train "
             "seed 1), a milder local stand-in for AffNIST.", "",
             "## Table 1: accuracy (%), ours / paper" + (" (ours: mean ± s.d. over seeds)" if len(s["seeds"]) > 1
                                                         else ""), "", *table1_lines(report)]
    if len(s["seeds"]) > 1:
        cols = [c for c in COLUMNS if any(c in r["per_seed"] for r in report["table"])]
        lines += [f"Per seed ({', '.join(map(str, s['seeds']))}), accuracy (%):", "",
                  "| model | z | " + " | ".join(cols) + " |", "| --- | --- | " + " | ".join("---" for _ in cols) + " |"]
        for row in report["table"]:
            cells = [", ".join(fmt(v) for v in row["per_seed"].get(c, [])) or "–" for c in cols]
            lines.append(f"| {row['name']} | {row['latent']} | " + " | ".join(cells) + " |")
        lines.append("")
    if report["figure2"]:
        sizes = sorted({int(n) for r in report["figure2"] for n in r["curve"]})
        lines += ["## Figure 2: Aff accuracy (%) against labelled KNN training latents",
                  f"(mean ± s.d. over {s['repeats']} random labelled subsets per seed, {len(s['seeds'])} seed(s); "
                  "the paper plots F-Aff over 20 runs and gives no numbers)", "",
                  "| source | model | z | " + " | ".join(str(n) for n in sizes) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in sizes) + " |"]
        for r in report["figure2"]:
            cells = [f"{100 * r['curve'][str(n)]['mean']:.1f} ± {100 * r['curve'][str(n)]['std']:.1f}"
                     if str(n) in r["curve"] else "–" for n in sizes]
            lines.append(f"| {r['source']} | {r['name']} | {r['latent']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


def seed_note(report: dict[str, Any]) -> str:
    seeds = report["settings"]["seeds"]
    if len(seeds) == 1:
        return (f"One training run (seed {seeds[0]}) per model: seed-to-seed spread is not measured, so differences "
                "of a few points may be noise.")
    spread = max((max(v) - min(v)) * 100 for r in report["table"] for v in r["per_seed"].values())
    return (f"{len(seeds)} training seeds per model; the same model's accuracy varies by up to {spread:.1f} points "
            "between seeds, so smaller differences between models are within seed noise.")


def notes_for(report: dict[str, Any]) -> list[str]:
    s = report["settings"]
    notes = [
        f"Runs are far shorter than the paper's 200 epochs ({s['epochs_used']}), so same-domain accuracies "
        "(M-M, F-F) and ELBOs fall short of the paper's, and the ordering of the models can differ from Table 1. "
        "Aff accuracies are not comparable with the paper's in absolute terms (the stand-in is milder than "
        "AffNIST); compare the models with each other.",
        seed_note(report) + f" With {s['n_test']} test images the KNN accuracy itself has a standard "
        f"error of up to {50 / max(s['n_test'], 1) ** 0.5:.1f} points.",
        "Architecture: the project's `sigma-conv` encoder/decoder (3 stride-2 3x3 convs 32-64-128 + linear) for all "
        "three models, not the paper's 4x4 conv stack; q_psi (2x1000) and h_xi (1x1000) MLPs as in Appendix B.",
        "Aff is a synthetic affine copy of MNIST (rotation ±20°, shift ±10 %, scale 0.8-1.2, shear ±20°), not "
        "AffNIST; training transformations (T-VAE triplets and VAE+ augmentation) are rotation ±30°, shift ±10 %, "
        "scale 0.8-1.2, shear ±20°, which cover it. The paper does not state its ranges.",
        "VAE+ sees every training image transformed (no untransformed copies); the T-VAE sees x, f(x), f^-1(x).",
    ]
    if s.get("scored_only"):
        notes.append("Assembled with --scored-only from the per-model score files in --results-dir; the same command "
                     "without --scored-only trains and scores the missing models (each cell needs every seed).")
    if s.get("fashion_missing"):
        notes.append(f"Fashion-MNIST not found ({s['fashion_missing']}): F columns not run.")
    rows = {(r["preset"], r["latent"]): r for r in report["table"]}
    for latent in s["latents"]:
        for col in ("M-Aff", "F-Aff"):
            for base in ("vae", "vae-plus"):
                t, v = rows.get(("tvae", latent)), rows.get((base, latent))
                if not (t and v and col in t["per_seed"] and col in v["per_seed"]):
                    continue
                diffs = [100 * (a - b) for a, b in zip(t["per_seed"][col], v["per_seed"][col], strict=True)]
                diff, wins = float(np.mean(diffs)), sum(d > 0 for d in diffs)
                if wins == len(diffs):
                    verdict = "T-VAE better" + (" in every seed" if len(diffs) > 1 else " (one seed)")
                elif wins == 0:
                    verdict = "T-VAE not better" + (" in any seed" if len(diffs) > 1 else " (one seed)")
                else:
                    side = "ahead" if diff > 0 else "behind"
                    verdict = f"T-VAE {side} on average but not in every seed: inconclusive"
                paper = PAPER_TABLE1[("tvae", latent)][col] - PAPER_TABLE1[(base, latent)][col]
                notes.append(f"z={latent}, {col}, T-VAE vs {MODELS[base]}: {verdict} (mean {diff:+.1f} points; "
                             f"per seed {', '.join(f'{d:+.1f}' for d in diffs)}; paper {paper:+.1f}).")
    return notes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.commit and not Path(args.results_dir).resolve().is_relative_to(ROOT):
        sys.exit(f"--commit needs --results-dir inside the repository {ROOT}")
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    mnist = vaecore.load_dataset("mnist", limit=args.limit)
    sources: dict[str, vaecore.Dataset] = {}
    fashion_missing = None
    for name in args.datasets:
        if name == "mnist":
            sources["M"] = mnist
            continue
        folder = fashion_dir(args.fashion_dir)
        if folder is None:
            fashion_missing = args.fashion_dir or "../shared/data/fashion-mnist"
            print(f"Fashion-MNIST not found at {fashion_missing}; skipping the F columns", file=sys.stderr)
            continue
        sources["F"] = vaecore.load_dataset("fashion-mnist", data_dir=str(folder), limit=args.limit)

    n_knn = min(args.n_knn_train, len(mnist.x_train))
    aff = {"x_train": transforms.affine_test_set(mnist.x_train[:n_knn], seed=1),
           "y_train": mnist.y_train[:n_knn],
           "x_test": transforms.affine_test_set(mnist.x_test[:args.n_test], seed=0),
           "y_test": mnist.y_test[:args.n_test]}

    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="tvae_transfer_"))
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    figure2 = []
    runs = []
    for latent in args.latents:
        for preset in args.models:
            row = rows.setdefault((preset, latent), {
                "preset": preset, "name": MODELS[preset], "latent": latent, "per_seed": {},
                "test_neg_elbo_per_seed": {}, "paper": PAPER_TABLE1.get((preset, latent), dict.fromkeys(COLUMNS))})
            for src, ds in sources.items():
                if args.scored_only and any(saved_score(preset, latent, ds, args, seed) is None
                                            for seed in args.seeds):
                    print(f"{MODELS[preset]} z={latent} on {ds.name}: not every seed scored; reported as not run",
                          file=sys.stderr, flush=True)
                    continue
                curves = []
                for seed in args.seeds:
                    run_dir = work / run_name(ds, preset, latent, seed)
                    print(f"training {MODELS[preset]} z={latent} on {ds.name}, seed {seed} ...", file=sys.stderr,
                          flush=True)
                    res, facts = scored_run(preset, latent, ds, aff, args, seed, run_dir)
                    row["per_seed"].setdefault(f"{src}-{src}", []).append(res["same"])
                    row["per_seed"].setdefault(f"{src}-Aff", []).append(res["aff"])
                    row["test_neg_elbo_per_seed"].setdefault(src, []).append(res["test_neg_elbo"])
                    curves.append(res["curve"])
                    runs.append({"source": src, "preset": preset, "latent": latent, "seed": seed, **facts})
                    print(f"  {src}-{src} {res['same']:.3f}  {src}-Aff {res['aff']:.3f}  -ELBO "
                          f"{res['test_neg_elbo']:.1f}  ({facts['train_seconds']} s)", file=sys.stderr, flush=True)
                figure2.append({"source": src, "preset": preset, "name": MODELS[preset], "latent": latent,
                                "curve": mean_curve(curves)})
    rows = {key: row for key, row in rows.items() if row["per_seed"]}
    for row in rows.values():
        row["ours"] = {col: float(np.mean(v)) for col, v in row["per_seed"].items()}
        row["test_neg_elbo"] = {src: float(np.mean(v)) for src, v in row["test_neg_elbo_per_seed"].items()}
    report: dict[str, Any] = {
        "settings": {
            "command": "python experiments/tvae_transfer.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "epochs": args.epochs, "max_steps": args.max_steps, "epochs_used": epochs_used(runs),
            "limit": args.limit, "train_images": {s: len(d.x_train) for s, d in sources.items()},
            "n_test": min(args.n_test, len(mnist.x_test)), "n_knn_train": n_knn, "k": args.k,
            "latents": args.latents, "models": args.models, "batch_size": args.batch_size, "lr": args.lr,
            "seeds": args.seeds, "repeats": args.repeats, "labelled": args.labelled,
            "fashion_missing": fashion_missing, "torch_threads": torch.get_num_threads(),
            "scored_only": args.scored_only,
        },
        "table": list(rows.values()),
        "figure2": figure2,
        "runs": runs,
        "paper": {"table1": {f"{p}-z{z}": v for (p, z), v in PAPER_TABLE1.items()},
                  "mnist_marginal_nll": PAPER_MNIST_NLL},
    }
    report["notes"] = notes_for(report)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), report)
    atomic_write_bytes(out.with_suffix(".md"), render_markdown(report).encode())
    print(render_markdown(report))
    return report


if __name__ == "__main__":
    main()

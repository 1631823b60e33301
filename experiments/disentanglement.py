"""The disentanglement study: five families on procedural dSprites (64 × 64), three seeds each, scored by every
disentanglement metric; resumable, one model at a time.

    python experiments/disentanglement.py train --steps 3000 --threads 1 --commit   # train + score what is missing
    python experiments/disentanglement.py table --write    # docs/disentanglement.md's table and RESULTS.md's section

Models: the dSprites network of Burgess et al. 2018 (`burgess-conv`: 4 convs of 32 channels 4 × 4 stride 2,
2 fully connected layers of 256), latent 10, Bernoulli decoder; Adam 5e-4 (Burgess et al.), batch 64, a fixed
number of steps (`--steps`) on the training split (720,280 images; 10,000 test and 10,000 validation images
held out by seed 0). Families and their settings (FAMILIES below): VAE; β-VAE β = 4; β-TC-VAE β = 6
(α = γ = 1, minibatch-weighted sampling, Chen et al.); FactorVAE γ = 35 (discriminator 3 × 256);
Disentangled β-VAE β = 1000 with C rising to 25 nats over the run (Burgess et al.'s dSprites settings, their
warm-up scaled to the budget). Each finished run is scored on the first 10,000 test images (the
`disentanglement` metrics with their default settings; the ELBO and the KL per dimension on the first
2,000) into
experiments/results/disentanglement/<family>-s<seed>.json; seed 0 of each family is bundled in
checkpoints/dsprites-<family>/. Runs live in runs/disentanglement/ (resumed from their last checkpoint).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import vaecore  # noqa: E402
from vaecore.config import TrainConfig  # noqa: E402
from vaecore.evaluation import metrics as M  # noqa: E402
from vaecore.files import CONFIG, EVAL, TRAIN, WEIGHTS  # noqa: E402
from vaecore.training import run_folder as rf  # noqa: E402
from vaecore.training.trainer import Trainer  # noqa: E402

DATA = "dsprites-procedural"
RESULTS = ROOT / "experiments" / "results" / "disentanglement"
RUNS = ROOT / "runs" / "disentanglement"
CHECKPOINTS = ROOT / "checkpoints"
SEEDS = (0, 1, 2)
BATCH, LR = 64, 5e-4
N_TEST = 10_000
NET = {"arch": "burgess-conv", "latent_dim": 10, "likelihood": "bernoulli", "likelihood_kwargs": {}}
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "vae": ("bernoulli-vae", {}),
    "beta-vae": ("bernoulli-vae", {"beta": 4.0}),
    "beta-tc-vae": ("beta-tc-vae", {"alpha": 1.0, "beta": 6.0, "gamma": 1.0, "estimator": "mws"}),
    "factor-vae": ("factor-vae", {"gamma": 35.0}),
    "disentangled-beta-vae": ("disentangled-beta-vae", {"beta": 1000.0, "capacity": 25.0}),
}
METRICS = ("mig", "sap", "dci", "dci-completeness", "dci-informativeness", "modularity", "beta-vae-score",
           "factor-vae-score")
LIKELIHOOD_METRICS, N_ELBO = ("elbo", "kl-per-dim"), 2000
DONE = "done.json"


def run_name(family: str, seed: int) -> str:
    return f"{family}-s{seed}"


def overrides(family: str, steps: int, steps_per_epoch: int) -> dict[str, Any]:
    """Model settings of a family: the network, the likelihood and the family's own."""
    _, own = FAMILIES[family]
    out = {**NET, **own}
    if family == "disentangled-beta-vae":
        out["capacity_warmup_epochs"] = steps / steps_per_epoch  # C reaches its maximum at the end of the run
    return out


def train_one(family: str, seed: int, steps: int, threads: int, dataset: vaecore.Dataset, runs: Path = RUNS,
              device: str = "auto") -> Path:
    """Train (or resume) one run to `steps` steps; its folder."""
    folder = runs / run_name(family, seed)
    if (folder / DONE).is_file():
        return folder
    t = time.time()
    if rf.holds_run(folder):
        print(f"[disent] {folder.name}: resuming", flush=True)
        result = Trainer.resume(folder, dataset=dataset, progress=True, threads=threads, device=device).fit()
    else:
        if folder.exists():
            shutil.rmtree(folder)
        tc = TrainConfig(data=DATA, epochs=1, max_steps=steps, batch_size=BATCH, lr=LR, seed=seed, threads=threads,
                         checkpoint_every=250, log_every=50, val_limit=2000, sample_grids=False, keep_best=False,
                         device=device)
        per_epoch = dataset.size("train") // BATCH
        preset, _ = FAMILIES[family]
        result = vaecore.train(preset, dataset, folder, tc, progress=True, **overrides(family, steps, per_epoch))
    if result.status != "finished":
        raise RuntimeError(f"{folder.name}: {result.status} at step {result.step}: {result.message}")
    (folder / DONE).write_text(json.dumps({"seconds": round(time.time() - t, 1), "step": result.step,
                                           "threads": threads, "torch": torch.__version__}))
    return folder


# Pythae's β-TC-VAE dSprites row -------------------------------------------------------------------------------
PYTHAE_ROW = {"published": {"elbo": 85.54, "modified_elbo": 710.41}, "code": {"elbo": 86.40, "modified_elbo": 712.26},
              "source": "Pythae's reproducibility table (examples/scripts/reproducibility/betatcvae.py; reference: "
                        "rtqichen/beta-tcvae's code)"}
PYTHAE_SETTINGS = {"arch": "chen-mlp", "latent_dim": 10, "likelihood": "bernoulli", "likelihood_kwargs": {},
                   "alpha": 1.0, "beta": 6.0, "gamma": 1.0, "estimator": "mws"}
PYTHAE_OUT = ROOT / "experiments" / "results" / "disentanglement-pythae-tcvae.json"


def train_pythae(steps: int | None, epochs: int, threads: int, device: str, dataset: vaecore.Dataset,
                 runs: Path = RUNS) -> tuple[Path, int]:
    """Pythae's β-TC-VAE reproduction: chen-mlp, β = 6, α = γ = 1, MWS, Bernoulli, batch 1000, Adam 1e-3 (ε 1e-4),
    50 epochs, seed 123; resumed from its last checkpoint, stopped after `steps` steps when given."""
    folder = runs / "pythae-beta-tc-vae"
    if rf.holds_run(folder):
        result = Trainer.resume(folder, dataset=dataset, progress=True, threads=threads, device=device,
                                max_steps=steps).fit()
    else:
        if folder.exists():
            shutil.rmtree(folder)
        tc = TrainConfig(data=DATA, epochs=epochs, max_steps=steps, batch_size=1000, lr=1e-3, eps=1e-4, seed=123,
                         threads=threads, device=device, checkpoint_every=100, log_every=20, val_limit=2000,
                         sample_grids=False, keep_best=False)
        result = vaecore.train("beta-tc-vae", dataset, folder, tc, progress=True, **PYTHAE_SETTINGS)
    if result.status != "finished":
        raise RuntimeError(f"{folder.name}: {result.status} at step {result.step}: {result.message}")
    return folder, result.step


@torch.no_grad()
def modified_elbo(model: Any, dataset: vaecore.Dataset, n: int, batch: int = 1000) -> float:
    """The β-TC-VAE objective (what Pythae calls the modified ELBO, as a loss) per image on the first `n` test
    images, in batches of Pythae's 1000 (the minibatch estimators depend on the batch), N = the training set."""
    from vaecore.components.context import StepContext
    from vaecore.utils import evaluating

    ctx = StepContext.evaluation(dataset_size=dataset.size("train"))
    total, count = 0.0, 0
    with evaluating(model):
        for start in range(0, n, batch):
            x = dataset.take("test", slice(start, min(n, start + batch))).to(model.device)
            total += float(model.loss(x, ctx).loss) * x.shape[0]
            count += x.shape[0]
    return total / count


def cmd_pythae(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    dataset = vaecore.load_dataset(DATA, progress=True)
    folder, step = train_pythae(args.max_steps, args.epochs, args.threads, args.device, dataset, Path(args.runs))
    model = vaecore.load(folder, None if args.device == "auto" else args.device)
    elbo = M.evaluate(model, dataset, ["elbo"], n_test=args.n_test, seed=0, progress=True)["elbo"]
    per_epoch = dataset.size("train") // 1000
    record = {**PYTHAE_ROW, "ours": {"elbo": -elbo, "modified_elbo": modified_elbo(model, dataset, args.n_test)},
              "steps": step, "epochs_done": step / per_epoch, "epochs_target": args.epochs,
              "n_test": args.n_test, "settings": PYTHAE_SETTINGS, "batch_size": 1000, "lr": 1e-3, "eps": 1e-4,
              "train_images": dataset.size("train"), "torch": torch.__version__,
              "note": "ELBO and modified ELBO as positive losses in nats per image, on held-out test images; "
                      "Pythae trains on all 737,280 images and reports its own training-time values"}
    out = Path(args.out)
    out.write_text(json.dumps(record, indent=1))
    print(json.dumps(record["ours"]), f"after {record['epochs_done']} epochs", flush=True)
    if args.commit:
        commit([out], f"disentanglement study: Pythae's β-TC-VAE dSprites row at {step} steps")


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if k != "per_image"}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


def score(folder: Path, family: str, seed: int, dataset: vaecore.Dataset, device: str = "auto") -> dict[str, Any]:
    """Evaluate a finished run: the result record written to experiments/results/disentanglement/."""
    model = vaecore.load(folder, None if device == "auto" else device)
    t = time.time()
    result = M.evaluate(model, dataset, list(METRICS), n_test=N_TEST, seed=0, progress=True)
    fit = M.evaluate(model, dataset, list(LIKELIHOOD_METRICS), n_test=N_ELBO, seed=0, progress=True)
    result.update({k: v for k, v in fit.items() if k not in ("notes", "settings")})
    result["notes"] = {**result.get("notes", {}), **fit.get("notes", {})}
    result["settings_elbo"] = fit["settings"]
    done = json.loads((folder / DONE).read_text())
    train = json.loads((folder / TRAIN).read_text())
    return {"family": family, "seed": seed, "steps": done["step"], "train_seconds": done["seconds"],
            "eval_seconds": round(time.time() - t, 1), "threads": done["threads"], "torch": torch.__version__,
            "batch_size": BATCH, "lr": LR, "data": DATA, "config": json.loads((folder / CONFIG).read_text()),
            "train_config": train.get("config", train), "result": _plain(result)}


def bundle(folder: Path, family: str, record: dict[str, Any]) -> Path:
    """checkpoints/dsprites-<family>: the model of seed 0 with its train.json and eval.json."""
    dest = CHECKPOINTS / f"dsprites-{family}"
    dest.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS, TRAIN):
        shutil.copy2(folder / name, dest / name)
    (dest / EVAL).write_text(json.dumps(record["result"], indent=1))
    return dest


def commit(paths: list[Path], message: str) -> None:
    rel = [str(p.relative_to(ROOT)) for p in paths]
    subprocess.run(["bash", "/work/coord/commit_results.sh", message, *rel], cwd=ROOT, check=True)


def cmd_train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    dataset = vaecore.load_dataset(DATA, progress=True)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:  # every family's seed 0 first: the bundled models and a first table
        for family in args.families:
            out = results / f"{run_name(family, seed)}.json"
            if out.is_file() and not args.force:
                continue
            folder = train_one(family, seed, args.steps, args.threads, dataset, Path(args.runs), args.device)
            record = score(folder, family, seed, dataset, args.device)
            out.write_text(json.dumps(record, indent=1))
            paths = [out]
            if seed == 0 and not args.no_bundle:
                paths.append(bundle(folder, family, record))
            r = record["result"]
            print(f"[disent] {out.stem}: MIG {r['mig']:.3f} SAP {r['sap']:.3f} DCI {r['dci']:.3f} "
                  f"β-VAE {r['beta-vae-score']:.3f} FactorVAE {r['factor-vae-score']:.3f} ELBO {r['elbo']:.1f} "
                  f"({record['train_seconds']:.0f}s train, {record['eval_seconds']:.0f}s eval)", flush=True)
            if args.commit:
                commit(paths, f"disentanglement study: {out.stem} ({record['steps']} steps) scored")


def cmd_table(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "experiments"))
    from disentanglement_table import write

    write(RESULTS, write_files=args.write)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train and score every missing (family, seed)")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    t.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    t.add_argument("--commit", action="store_true", help="commit each finished result with commit_results.sh")
    t.add_argument("--force", action="store_true", help="rescore runs that already have a result")
    t.add_argument("--no-bundle", action="store_true", help="do not copy seed 0 into checkpoints/")
    t.add_argument("--runs", default=str(RUNS), help="folder of the run folders")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda")
    t.add_argument("--results", default=str(RESULTS), help="folder of the result files")
    t.set_defaults(fn=cmd_train)
    r = sub.add_parser("pythae-tcvae", help="Pythae's β-TC-VAE dSprites row (resumable)")
    r.add_argument("--epochs", type=int, default=50)
    r.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (resume later)")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--device", default="auto")
    r.add_argument("--n-test", type=int, default=10_000)
    r.add_argument("--runs", default=str(RUNS))
    r.add_argument("--out", default=str(PYTHAE_OUT))
    r.add_argument("--commit", action="store_true")
    r.set_defaults(fn=cmd_pythae)
    b = sub.add_parser("table", help="the results table from the result files")
    b.add_argument("--write", action="store_true", help="write docs/disentanglement.md's table and RESULTS.md")
    b.set_defaults(fn=cmd_table)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()

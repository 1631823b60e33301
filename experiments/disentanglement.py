"""The disentanglement study: five families on procedural dSprites (64 × 64), three seeds each, scored by every
disentanglement metric; resumable, one model at a time.

    python experiments/disentanglement.py train --steps 500 --threads 1 --commit    # train + score what is missing
    python experiments/disentanglement.py table --write    # docs/disentanglement.md's table and RESULTS.md
    python experiments/disentanglement.py bundles --commit # complete bundles an older version of this script made

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
checkpoints/dsprites-<family>/ with its card, its row in checkpoints/catalog.json (under "study_models") and its
reference outputs, its eval.json naming the study's protocol (PROTOCOL). With --commit each result is committed
(plain git, in this repository) with the regenerated tables. Runs live in runs/disentanglement/ (resumed from their
last checkpoint).
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
sys.path.insert(0, str(ROOT / "experiments"))

import torch  # noqa: E402
from disentanglement_study import FAMILIES, title  # noqa: E402  (the study's families, shared with its table)

import vaecore  # noqa: E402
from vaecore.config import TrainConfig  # noqa: E402
from vaecore.evaluation import metrics as M  # noqa: E402
from vaecore.files import CATALOG, CONFIG, EVAL, TRAIN, WEIGHTS  # noqa: E402
from vaecore.training import run_folder as rf  # noqa: E402
from vaecore.training.trainer import Trainer  # noqa: E402
from vaecore.utils import atomic_write_bytes  # noqa: E402

DATA = "dsprites-procedural"
RESULTS = ROOT / "experiments" / "results" / "disentanglement"
RUNS = ROOT / "runs" / "disentanglement"
CHECKPOINTS = ROOT / "checkpoints"
SEEDS = (0, 1, 2)
BATCH, LR = 64, 5e-4
N_TEST = 10_000
NET = {"arch": "burgess-conv", "latent_dim": 10, "likelihood": "bernoulli", "likelihood_kwargs": {}}
METRICS = ("mig", "sap", "dci", "dci-completeness", "dci-informativeness", "modularity", "beta-vae-score",
           "factor-vae-score")
LIKELIHOOD_METRICS, N_ELBO = ("elbo", "kl-per-dim"), 2000
DONE = "done.json"
BUNDLE_PREFIX = "dsprites-"
PROTOCOL = "dsprites-disentanglement-study"
"""What a bundled study model's eval.json names as its protocol: this study's (N_TEST test images for the
disentanglement metrics, N_ELBO for the ELBO and KL per dimension, seed 0), not the MNIST zoo's
(vaecore/evaluation/protocol.py)."""
CATALOG_KEY = "study_models"  # the study's rows in checkpoints/catalog.json (the MNIST zoo owns "models")
REFERENCE_OUTPUTS = ROOT / "tests" / "data" / "bundled_outputs.json"


def run_name(family: str, seed: int) -> str:
    return f"{family}-s{seed}"


def bundle_name(family: str) -> str:
    """The bundled folder of a family's seed 0 (checkpoints/dsprites-<family>)."""
    return f"{BUNDLE_PREFIX}{family}"


def bundled_family(name: str) -> str | None:
    """The study family a bundled model's name belongs to, or None for a model that is not the study's."""
    family = name[len(BUNDLE_PREFIX):] if name.startswith(BUNDLE_PREFIX) else None
    return family if family in FAMILIES else None


def protocol_settings() -> dict[str, Any]:
    """The evaluation settings every bundled study model's eval.json records (tests check them)."""
    return {"protocol": PROTOCOL, "dataset": DATA, "n_test": N_TEST, "first_image": 0, "seed": 0}


def reproduce_command(family: str, steps: int) -> str:
    """The command that trains and scores a bundled study model again."""
    return f"python experiments/disentanglement.py train --steps {steps} --families {family} --seeds 0"


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
    atomic_write_bytes(folder / DONE, json.dumps({"seconds": round(time.time() - t, 1), "step": result.step,
                                                  "threads": threads, "torch": torch.__version__}).encode())
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
              "train_images": dataset.size("train"), "torch": torch.__version__, "threads": args.threads,
              "note": "ELBO and modified ELBO as positive losses in nats per image, on held-out test images; "
                      "Pythae trains on all 737,280 images and reports its own training-time values"}
    out = Path(args.out)
    atomic_write_bytes(out, json.dumps(record, indent=1).encode())
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


def bundle(folder: Path, family: str, record: dict[str, Any]) -> list[Path]:
    """checkpoints/dsprites-<family>: the model of seed 0 with its train.json, eval.json, card, catalog row and
    reference outputs (`complete_bundle`); the paths to commit."""
    dest = CHECKPOINTS / bundle_name(family)
    dest.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS, TRAIN):
        shutil.copy2(folder / name, dest / name)
    atomic_write_bytes(dest / EVAL, json.dumps(record["result"], indent=1).encode())
    return complete_bundle(dest, family)


def card_text(family: str, steps: int) -> str:
    """What a bundled study model's card adds to the engine's card: the study, its protocol and budget."""
    return (f"## The dSprites disentanglement study\n\nSeed 0 of {title(family)} in the study of "
            "`experiments/disentanglement.py` (five families × three seeds; the table with every seed is in "
            "`docs/disentanglement.md`). Evaluated with the study's protocol (`" + PROTOCOL + "`), not the MNIST "
            f"zoo's: the disentanglement metrics on the first {N_TEST:,} test images of {DATA} (the estimators' "
            f"settings and library versions are in {EVAL} under `disentanglement`), the ELBO and the KL per "
            f"dimension on the first {N_ELBO:,}; the IWAE and sample settings the table above names were not "
            f"used.\n\nBudget: {steps} steps of batch {BATCH} on CPU, far below the papers' (300,000 steps in "
            "Locatello et al. 2019): early-training numbers, not a reproduction of published ones.\n\n"
            f"Reproduce:\n\n```\n{reproduce_command(family, steps)}\n```")


def catalog_row(family: str, folder: Path) -> dict[str, Any]:
    """The study model's row in checkpoints/catalog.json (under CATALOG_KEY)."""
    from vaecore.presets import get_preset

    config = json.loads((folder / CONFIG).read_text())
    train = json.loads((folder / TRAIN).read_text())
    steps = int(train["max_steps"])
    return {"name": folder.name, "title": f"{title(family)} on dSprites", "family": family,
            "description": f"{get_preset(FAMILIES[family][0]).description}; {NET['arch']} on {DATA}, {steps} steps "
                           "(the disentanglement study's seed 0)",
            "data": config.get("dataset"), "likelihood": config.get("likelihood"),
            "likelihood_kwargs": config.get("likelihood_kwargs"), "latent_dim": config.get("latent_dim"),
            "model_type": config.get("model_type"), "epochs": train["epochs"], "steps": steps,
            "seed": train["seed"], "location": "bundled", "protocol": PROTOCOL,
            "reproduce": reproduce_command(family, steps)}


def complete_bundle(dest: Path, family: str) -> list[Path]:
    """Make a bundled study model first-class: its eval.json names the study's protocol, its card, its row in the
    catalog and its reference outputs (tests/test_checkpoint_outputs.py); idempotent. The paths it wrote."""
    from zoo_common import reference_outputs

    from vaecore.model_card import write_model_card
    from vaecore.utils import atomic_write_json

    result = json.loads((dest / EVAL).read_text())
    result["settings"] = {**result.get("settings", {}), "protocol": PROTOCOL}
    atomic_write_bytes(dest / EVAL, json.dumps(result, indent=1).encode())
    config = json.loads((dest / CONFIG).read_text())
    steps = int(json.loads((dest / TRAIN).read_text())["max_steps"])
    write_model_card(dest, config, result, extra=card_text(family, steps))
    catalog_path = CHECKPOINTS / CATALOG
    catalog = json.loads(catalog_path.read_text()) if catalog_path.is_file() else {}
    rows = {r["name"]: r for r in catalog.get(CATALOG_KEY, [])}
    rows[dest.name] = catalog_row(family, dest)
    order = [bundle_name(f) for f in FAMILIES]
    catalog[CATALOG_KEY] = sorted(rows.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else 99)
    atomic_write_json(catalog_path, catalog)
    refs = json.loads(REFERENCE_OUTPUTS.read_text())
    refs[dest.name] = reference_outputs(vaecore.load(dest))
    atomic_write_bytes(REFERENCE_OUTPUTS, (json.dumps(refs, indent=1, sort_keys=True) + "\n").encode())
    return [dest, catalog_path, REFERENCE_OUTPUTS]


def write_tables() -> list[Path]:
    """docs/disentanglement.md's table and RESULTS.md (with every section) regenerated; their paths."""
    from disentanglement_table import DOC, write
    from zoo_table import write_results

    write(RESULTS, write_files=True, echo=False)
    write_results(CHECKPOINTS)
    return [DOC, CHECKPOINTS / "RESULTS.md"]


def commit(paths: list[Path], message: str) -> None:
    """Commit exactly these paths in this repository (whatever else is staged stays staged)."""
    from zoo_common import git_commit

    rel = sorted({str(p.relative_to(ROOT)) for p in paths})
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", *rel], capture_output=True,
                             text=True, check=True).stdout.strip()
    if changed:  # nothing to commit is no error (a rerun of `bundles`)
        git_commit(ROOT, rel, message)
    else:
        print(f"[disent] nothing changed in {', '.join(rel)}: no commit", flush=True)


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
            atomic_write_bytes(out, json.dumps(record, indent=1).encode())
            paths = [out]
            if seed == 0 and not args.no_bundle:
                paths += bundle(folder, family, record)
            if args.results == str(RESULTS):
                paths += write_tables()
            r = record["result"]
            print(f"[disent] {out.stem}: MIG {r['mig']:.3f} SAP {r['sap']:.3f} DCI {r['dci']:.3f} "
                  f"β-VAE {r['beta-vae-score']:.3f} FactorVAE {r['factor-vae-score']:.3f} ELBO {r['elbo']:.1f} "
                  f"({record['train_seconds']:.0f}s train, {record['eval_seconds']:.0f}s eval)", flush=True)
            if args.commit:
                commit(paths, f"disentanglement study: {out.stem} ({record['steps']} steps) scored")


def cmd_table(args: argparse.Namespace) -> None:
    from disentanglement_table import write

    if args.write:
        write_tables()
    else:
        write(RESULTS)


def cmd_bundles(args: argparse.Namespace) -> None:
    """Complete every bundled study model (checkpoints/dsprites-<family>) and regenerate the tables."""
    names = [p.name for p in sorted(CHECKPOINTS.glob(f"{BUNDLE_PREFIX}*")) if bundled_family(p.name)
             and (p / WEIGHTS).is_file() and (p / EVAL).is_file()]
    paths: list[Path] = []
    for name in names:
        paths += complete_bundle(CHECKPOINTS / name, bundled_family(name))
        print(f"[disent] {name}: protocol, card, catalog row and reference outputs written", flush=True)
    paths += write_tables()
    if args.commit and names:
        commit(paths, "disentanglement study: bundled dSprites models completed (" + ", ".join(names)
               + f"): the study's protocol named in {EVAL}, cards, catalog rows, reference outputs; tables")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train and score every missing (family, seed)")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    t.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    t.add_argument("--commit", action="store_true", help="commit each finished result (git, in this repository)")
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
    c = sub.add_parser("bundles", help="complete the bundled models (protocol, card, catalog row, reference outputs)")
    c.add_argument("--commit", action="store_true", help="commit what it wrote (git, in this repository)")
    c.set_defaults(fn=cmd_bundles)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()

"""Train, evaluate and catalogue every bundled model in checkpoints/ from scratch, with fixed seeds.

    python experiments/train_zoo.py                    # train missing models, then evaluate all
    python experiments/train_zoo.py --stage eval       # (re)evaluate and refresh cards + catalog
    python experiments/train_zoo.py --only sigma-vae --force

Each checkpoints/<name>/ gets model.safetensors, config.json, train.json, metrics.jsonl (the
training trace), samples.png, eval.json (test metrics), the fitted GMM sampler and a model card
README.md with the command that reproduces it. checkpoints/catalog.json lists them all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import vaecore  # noqa: E402
from vaecore.model_card import write_model_card  # noqa: E402
from vaecore.presets import get_preset, train_config  # noqa: E402
from vaecore.utils import atomic_write_json  # noqa: E402

HUB_OWNER = "vae-explorer"
LATENT = 16
SEED = 0
EVAL_N_TEST = 2000
CHECK_N_TEST = 500
CHECK_METRICS = ["elbo", "mse"]
EVAL_METRICS = ["elbo", "iwae", "nll-pdf", "nll-discrete", "bpd", "mse", "knn", "active-units", "kl-per-dim",
                "mutual-info", "expected-gap", "fd", "classifier-score"]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    epochs: int
    title: str


ZOO = [
    ZooEntry("sigma-vae", 3, "σ-VAE (optimal σ)"),
    ZooEntry("sigma-vae-learned", 3, "σ-VAE (learned shared σ)"),
    ZooEntry("sigma-vae-per-pixel", 2, "σ-VAE (per-pixel σ)"),
    ZooEntry("gaussian-vae", 3, "Gaussian VAE (σ = 1)"),
    ZooEntry("beta-vae", 2, "β-VAE (σ = 1, β = 0.01)"),
    ZooEntry("bernoulli-vae", 3, "Bernoulli VAE"),
    ZooEntry("arelbo-iso-i", 3, "AR-ELBO Iso-I"),
    ZooEntry("arelbo-iso-d", 2, "AR-ELBO Iso-D"),
    ZooEntry("arelbo-diag-i", 2, "AR-ELBO Diag-I"),
    ZooEntry("arelbo-diag-d", 2, "AR-ELBO Diag-D"),
    ZooEntry("trainable-iso-i", 2, "Iso-I, trainable Σx"),
    ZooEntry("trainable-iso-d", 2, "Iso-D, trainable Σx"),
    ZooEntry("trainable-diag-i", 2, "Diag-I, trainable Σx"),
    ZooEntry("trainable-diag-d", 2, "Diag-D, trainable Σx"),
    ZooEntry("disc-logistic-vae", 2, "Discretized logistic VAE"),
    ZooEntry("logistic-mixture-vae", 2, "Logistic mixture VAE"),
    ZooEntry("categorical-vae", 2, "Categorical-256 VAE"),
    ZooEntry("bitwise-vae", 2, "Bitwise-categorical VAE"),
    ZooEntry("beta-likelihood-vae", 2, "Beta-likelihood VAE"),
    ZooEntry("iwae", 2, "IWAE (K = 5)"),
    ZooEntry("ae", 2, "Autoencoder"),
    ZooEntry("wae-mmd-imq", 2, "WAE-MMD (IMQ)"),
    ZooEntry("rae-gp", 2, "RAE-GP"),
    ZooEntry("tvae", 3, "T-VAE (latent 10)"),
    ZooEntry("vae", 3, "VAE (T-VAE baseline, latent 10)"),
    ZooEntry("vae-plus", 3, "VAE+ (augmented, latent 10)"),
]


def reproduce_command(entry: ZooEntry) -> str:
    latent = "" if entry.name in ("tvae", "vae", "vae-plus") else f" --latent-dim {LATENT}"
    return (f"python -m vaecore train --model {entry.name} --data mnist --epochs {entry.epochs}{latent} "
            f"--seed {SEED} --out checkpoints/{entry.name}")


def train_entry(entry: ZooEntry, out: Path, dataset: vaecore.Dataset) -> None:
    overrides = {} if entry.name in ("tvae", "vae", "vae-plus") else {"latent_dim": LATENT}
    tc = train_config(entry.name, epochs=entry.epochs, seed=SEED, data="mnist")
    t = time.time()
    result = vaecore.train(entry.name, dataset, out, tc, progress=True, **overrides)
    (out / "checkpoint.safetensors").unlink(missing_ok=True)
    print(f"[zoo] {entry.name}: {result.status} after {result.step} steps in {time.time() - t:.0f}s", flush=True)


def evaluate_entry(entry: ZooEntry, folder: Path, dataset: vaecore.Dataset) -> dict:
    from vaecore import samplers
    from vaecore.evaluation import metrics

    model = vaecore.load(folder)
    gmm = samplers.load_or_fit(model, folder, "gmm", dataset, components=10)
    result = metrics.evaluate(model, dataset, EVAL_METRICS, n_test=EVAL_N_TEST, seed=SEED, iwae_k=100,
                              n_samples=EVAL_N_TEST, progress=True)
    gmm_fd = metrics.evaluate(model, dataset, ["fd"], n_test=EVAL_N_TEST, seed=SEED, sampler=gmm,
                              n_samples=EVAL_N_TEST)
    result["fd_gmm"] = gmm_fd.get("fd")
    result["n_test"] = EVAL_N_TEST
    check = metrics.evaluate(model, dataset, CHECK_METRICS, n_test=CHECK_N_TEST, seed=SEED)
    result["check"] = {k: check[k] for k in CHECK_METRICS}
    atomic_write_json(folder / "eval.json", result)
    return result


def catalog_row(entry: ZooEntry, folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    return {"name": entry.name, "title": entry.title, "description": get_preset(entry.name).description,
            "data": config.get("dataset"), "likelihood": config.get("likelihood"),
            "likelihood_kwargs": config.get("likelihood_kwargs"), "latent_dim": config.get("latent_dim"),
            "model_type": config.get("model_type"), "epochs": entry.epochs, "seed": SEED,
            "hub_repo_id": f"{HUB_OWNER}/{entry.name}", "reproduce": reproduce_command(entry)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "checkpoints"))
    p.add_argument("--stage", choices=["train", "eval", "all"], default="all")
    p.add_argument("--only", nargs="*", help="names to process (default: the whole zoo)")
    p.add_argument("--force", action="store_true", help="retrain models that already exist")
    args = p.parse_args(argv)
    vaecore.list_models()
    out = Path(args.out)
    entries = [e for e in ZOO if not args.only or e.name in args.only]
    dataset = vaecore.load_dataset("mnist", seed=SEED)
    torch.manual_seed(SEED)
    for entry in entries:
        folder = out / entry.name
        if args.stage in ("train", "all") and (args.force or not (folder / "model.safetensors").exists()):
            train_entry(entry, folder, dataset)
        if args.stage in ("eval", "all") and (folder / "model.safetensors").exists():
            result = evaluate_entry(entry, folder, dataset)
            config = json.loads((folder / "config.json").read_text())
            write_model_card(folder, config, result, extra=f"Reproduce:\n\n```\n{reproduce_command(entry)}\n```")
            print(f"[zoo] {entry.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in result.items()
                                                      if isinstance(v, float)), flush=True)
    rows = [catalog_row(e, out / e.name) for e in ZOO if (out / e.name / "model.safetensors").exists()]
    atomic_write_json(out / "catalog.json", {"models": rows})


if __name__ == "__main__":
    main()

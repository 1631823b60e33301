"""Train the feature classifiers the Fréchet distance and the classifier score use.

One small CNN (vaecore.evaluation.features.FeatureClassifier) per dataset: MNIST (bundled) and
Fashion-MNIST (from --fashion-dir). Fixed seed, a few epochs on the CPU; writes
checkpoints/classifiers/<dataset>/{model.safetensors, config.json, README.md} with the
measured test accuracy.

    python experiments/train_feature_classifiers.py                   # both datasets
    python experiments/train_feature_classifiers.py --datasets mnist --epochs 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vaecore.data.datasets import Dataset, epoch_permutation, load_dataset  # noqa: E402
from vaecore.evaluation.features import DEFAULT_ARCH, DISPLAY_NAMES, FeatureClassifier, cross_entropy  # noqa: E402
from vaecore.files import CARD, CONFIG, WEIGHTS  # noqa: E402
from vaecore.utils import atomic_save_safetensors, atomic_write_bytes, atomic_write_json  # noqa: E402

DEFAULT_FASHION_DIR = REPO.parent / "shared" / "data" / "fashion-mnist"


def train_classifier(ds: Dataset, epochs: int, seed: int, batch_size: int, lr: float) -> tuple[FeatureClassifier, dict]:
    """Adam on the training split, learning rate halved each epoch; returns the model and its scores."""
    torch.manual_seed(seed)
    model = FeatureClassifier(DEFAULT_ARCH, dataset=ds.name)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    n = ds.x_train.shape[0]
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = epoch_permutation(n, seed, epoch)
        total, count = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = cross_entropy(model, ds.x_train[idx], ds.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        sched.step()
        val = model.accuracy(ds.x_val, ds.y_val)
        print(f"[{ds.name}] epoch {epoch + 1}/{epochs}: train loss {total / count:.4f}, val acc {val:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    scores = {"val_accuracy": model.accuracy(ds.x_val, ds.y_val),
              "test_accuracy": model.accuracy(ds.x_test, ds.y_test),
              "test_classifier_score": model.classifier_score(ds.x_test),
              "train_seconds": round(time.perf_counter() - t0, 1)}
    return model.eval(), scores


README = """# {display} feature classifier

A small CNN (`vaecore.evaluation.features.FeatureClassifier`) trained on {display} to provide the feature
space of the Fréchet distance (`fd`, with `fd_features = "{display}-classifier"`) and the
classifier score in `vaecore.metrics`.

- Architecture: conv3×3({c1}) → ReLU → maxpool2 → conv3×3({c2}) → ReLU → maxpool2 → dropout
  → FC({hidden}) → ReLU → dropout → FC({classes}). Input: (1, 28, 28) in [0, 1], scaled to [-1, 1].
  Features: the {hidden} post-ReLU units of FC({hidden}).
- Training: {train_size} training images (the validation split held out), {epochs} epochs of Adam,
  lr {lr} halved each epoch, batch {batch_size}, seed {seed}, CPU, {train_seconds} s.
- Test accuracy (full {test_size}-image test split): **{test_accuracy:.4f}**; validation accuracy {val_accuracy:.4f}.
- Classifier score of the real test images: {test_classifier_score:.3f} (upper bound {classes}).

These numbers are **not** comparable with Inception-FID / Inception Score values in papers:
they use a different (and much smaller) feature network. Compare models only with each other,
evaluated with these same weights.

Reproduce: `python experiments/train_feature_classifiers.py --datasets {name}`.
Files: `{weights}` (weights, float32), `{config_file}` (architecture and scores). No pickle.
"""


def save(model: FeatureClassifier, scores: dict, out: Path, ds: Dataset, args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "feature-classifier",
        "dataset": ds.name,
        "architecture": model.architecture,
        "feature_dim": int(model.architecture["hidden"]),
        "epochs": args.epochs, "seed": args.seed, "batch_size": args.batch_size, "lr": args.lr,
        "train_size": int(ds.x_train.shape[0]), "test_size": int(ds.x_test.shape[0]),
        "torch_version": torch.__version__,
        **{k: round(v, 6) if isinstance(v, float) else v for k, v in scores.items()},
    }
    atomic_save_safetensors(model.state_dict(), out / WEIGHTS, metadata={"format": "pt", "dataset": ds.name})
    atomic_write_json(out / CONFIG, config)
    arch = model.architecture
    text = README.format(display=DISPLAY_NAMES.get(ds.name, ds.name), name=ds.name, c1=arch["channels"][0],
                         c2=arch["channels"][1], hidden=arch["hidden"], classes=arch["num_classes"],
                         weights=WEIGHTS, config_file=CONFIG, **config)
    atomic_write_bytes(out / CARD, text.encode())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"], choices=["mnist", "fashion-mnist"])
    p.add_argument("--fashion-dir", default=str(DEFAULT_FASHION_DIR),
                   help="folder with the four Fashion-MNIST IDX files (default: %(default)s)")
    p.add_argument("--out", default=str(REPO / "checkpoints" / "classifiers"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.datasets:
        ds = load_dataset(name, data_dir=args.fashion_dir if name == "fashion-mnist" else None)
        model, scores = train_classifier(ds, args.epochs, args.seed, args.batch_size, args.lr)
        save(model, scores, Path(args.out) / name, ds, args)
        print(f"[{name}] test accuracy {scores['test_accuracy']:.4f} -> {Path(args.out) / name}", flush=True)


if __name__ == "__main__":
    main()

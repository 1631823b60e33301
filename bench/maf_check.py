"""Is the MAF sampler under-trained? FD of a bundled model's MAF samples at our budget and at Pythae's, beside the GMM.

    python bench/maf_check.py --models sigma-vae gaussian-vae --seeds 3 --threads 1 > maf_check.json

Pythae's MAFSampler (src/pythae/samplers/maf_sampler/) trains its flow with the BaseTrainer defaults: 100 epochs,
Adam lr 1e-4, batch 64, keeping the best model on the validation codes, on the encoder's *sampled* codes z (the
model's forward pass), not the posterior means. Ours trains 2,000 steps of batch 256 (Adam 1e-3, cosine decay) on
the standardised posterior means of 10,000 training images. Each variant below is fitted once (seed 0), and scored
by the held-out log-density of 2,000 validation means (higher: a better density fit) and by FD of 2,000 generated
images against the first 2,000 test images over sample seeds (mean ± s.d.).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vaecore  # noqa: E402
from vaecore.evaluation.features import load_feature_classifier  # noqa: E402
from vaecore.evaluation.metrics import frechet_distance, generate, latent_means  # noqa: E402
from vaecore.samplers import fit_sampler  # noqa: E402

N_TRAIN = 10_000
VARIANTS = {
    "gmm-10": ("gmm", {"components": 10}),
    "maf (ours: 2k steps, bs 256, lr 1e-3)": ("maf", {}),
    "maf 10x steps (20k steps)": ("maf", {"steps": 20_000}),
    "maf, Pythae's budget (100 epochs of 10k, bs 64, lr 1e-4)": ("maf", {"steps": 100 * N_TRAIN // 64,
                                                                          "batch_size": 64, "lr": 1e-4}),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["sigma-vae"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dataset = vaecore.load_dataset("mnist", seed=0)
    clf = load_feature_classifier("mnist")
    real = clf.features(dataset.x_test[:args.n])
    out = {}
    for name in args.models:
        model = vaecore.load(name).eval()
        z_val = latent_means(model, dataset.x_val[:2000]).double()
        rows = {}
        for label in args.variants:
            kind, kwargs = VARIANTS[label]
            t = time.time()
            sampler = fit_sampler(model, dataset, kind, n_train=N_TRAIN, seed=0, **kwargs)
            fit_s = time.time() - t
            with torch.no_grad():
                held_out = float(sampler.log_prob(z_val.float()).double().mean())
            fds = [frechet_distance(clf.features(generate(model, args.n, sampler, seed=3 + s)), real)
                   for s in range(args.seeds)]
            rows[label] = {"fd_mean": float(np.mean(fds)), "fd_sd": float(np.std(fds, ddof=1)) if len(fds) > 1
                           else 0.0, "fd": fds, "val_log_density": held_out, "fit_seconds": round(fit_s, 1)}
            print(name, label, json.dumps(rows[label]), flush=True, file=sys.stderr)
        out[name] = rows
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

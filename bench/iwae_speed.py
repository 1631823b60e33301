"""Time an IWAE log-likelihood estimate: K = 200 draws for each of 1000 MNIST test images.

Uses the bundled σ-VAE (checkpoints/sigma-vae) when present, else a freshly built σ-VAE small
conv net: the cost depends on the architecture, not on the weights. Target: < 120 s on 2 CPU cores.

    python bench/iwae_speed.py [--k 200] [--n 1000] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vaecore import build_model, load, load_dataset, model_config  # noqa: E402
from vaecore.evaluation.metrics import iwae_log_likelihood  # noqa: E402
from vaecore.files import WEIGHTS  # noqa: E402

TARGET_S = 120.0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--chunk", type=int, default=None, help="draws per decoder pass (default: automatic)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if (REPO / "checkpoints" / "sigma-vae" / WEIGHTS).is_file():
        model, source = load("sigma-vae", device=args.device), "bundled checkpoints/sigma-vae"
    else:
        torch.manual_seed(0)
        model = build_model(model_config("sigma-vae", input_shape=(1, 28, 28)).to_dict()).to(args.device).eval()
        source = "freshly built σ-VAE (untrained)"
    x = load_dataset("mnist").x_test[: args.n]
    g = torch.Generator(device=args.device).manual_seed(0)
    start = time.perf_counter()
    ll = iwae_log_likelihood(model, x, k=args.k, batch_size=args.batch_size, chunk=args.chunk, generator=g)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ok = "meets" if seconds < TARGET_S else "MISSES"
    print(f"model: {source}; arch {model.config.arch}, latent {model.latent_dim}")
    print(f"IWAE K={args.k} on {args.n} MNIST test images, {args.threads} thread(s) on {args.device}: "
          f"{seconds:.1f} s ({args.k * args.n / seconds:,.0f} decoder evaluations/s), "
          f"mean log p(x) estimate {float(ll.mean()):.2f} nats")
    print(f"target < {TARGET_S:.0f} s on 2 CPU cores: {ok} target")


if __name__ == "__main__":
    main()

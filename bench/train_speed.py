"""Training throughput and peak memory of the σ-VAE small conv on MNIST (batch 128).

    python bench/train_speed.py [--steps 200] [--device auto]

Measures vaecore's Trainer against a bare PyTorch loop over the same model and batches in the
same run (the peer), so the trainer's own overhead is visible. Prints images/s and peak memory
(CUDA: max allocated; CPU: the process's peak resident set).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import vaecore  # noqa: E402
from vaecore.presets import model_config  # noqa: E402
from vaecore.utils import default_device  # noqa: E402


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_loop(model: torch.nn.Module, x: torch.Tensor, steps: int, batch: int) -> float:
    """The peer: a plain Adam loop over model.loss with no logging, checkpoints or validation."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator(device=x.device).manual_seed(0)
    model.train()
    for i in range(steps + 10):
        if i == 10:
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
        idx = torch.randint(0, x.shape[0], (batch,), generator=g, device=x.device)
        loss = model.loss(x[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = default_device(args.device)
    data = vaecore.load_dataset("mnist")
    cfg = model_config("sigma-vae", latent_dim=16).to_dict()
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, batch 128, {args.steps} steps")

    model = vaecore.build_model(cfg, seed=0).to(device)
    rate_bare = bare_loop(model, data.x_train.to(device), args.steps, 128)
    print(f"bare PyTorch loop : {rate_bare:8.0f} images/s")

    with tempfile.TemporaryDirectory() as out:
        tc = vaecore.TrainConfig(max_steps=args.steps, log_every=10_000, checkpoint_every=10_000, val_limit=500,
                                 device=str(device))
        t = time.perf_counter()
        vaecore.Trainer(vaecore.build_model(cfg, seed=0), data, tc, out).fit()
        elapsed = time.perf_counter() - t
    rate = args.steps * 128 / elapsed
    print(f"vaecore Trainer   : {rate:8.0f} images/s (whole run incl. start/final checkpoint and validation)")
    print(f"peak memory       : {peak_memory_mb(device):8.0f} MB")


if __name__ == "__main__":
    main()

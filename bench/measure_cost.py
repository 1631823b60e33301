"""What the one-off kernel measuring costs on a new machine: the first training step and inference pass of a
network with an empty kernel cache, against the steady ones.

    python bench/measure_cost.py [--net pythae-conv] [--batch 100] [--eval-batch 500] [--threads 1]

Builds the network (a Gaussian VAE, latent 16, 28×28), turns on the measured kernels (`conv_autotune.enable`) with
a fresh cache folder, and times two training steps (loss forward + backward) of `--batch` random images, then two
`reconstruct` passes of `--eval-batch` under `evaluating` (which also measures the memory format). With one thread,
CPU time of the process; prints the choices made.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", default="pythae-conv")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--eval-batch", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    os.environ["VAECORE_CACHE_DIR"] = tempfile.mkdtemp(prefix="vaecore-kernels-")  # nothing measured yet

    import torch

    torch.set_num_threads(args.threads)
    import machine_report

    import vaecore
    from vaecore.presets import model_config
    from vaecore.runtime import conv_autotune
    from vaecore.utils import evaluating

    tick, clock = machine_report.clock()
    print(machine_report.header()[0])
    model = vaecore.build_model(model_config("gaussian-vae", arch=args.net, latent_dim=16,
                                             input_shape=(1, 28, 28)).to_dict(), seed=0)
    conv_autotune.enable(model)
    gen = torch.Generator().manual_seed(0)
    x, xe = torch.rand(args.batch, 1, 28, 28, generator=gen), torch.rand(args.eval_batch, 1, 28, 28, generator=gen)
    steps, passes = [], []
    for _ in range(2):
        t = tick()
        model.loss(x).loss.backward()
        steps.append(tick() - t)
    with evaluating(model), torch.inference_mode():
        for _ in range(2):
            t = tick()
            model.reconstruct(xe)
            passes.append(tick() - t)
    print(f"{args.net} ({clock.split(' (')[0]}): training step of {args.batch}: first {steps[0]:.2f} s, "
          f"then {steps[1]:.2f} s; inference pass of {args.eval_batch}: first {passes[0]:.2f} s, "
          f"then {passes[1]:.2f} s")
    for name, table in conv_autotune.choices(model).items():
        print(f"  {name:<12} " + ", ".join(f"{k}: {v}" for k, v in table.items()))


if __name__ == "__main__":
    main()

"""Inference through vaecore's engine against a bare PyTorch loop over the same model, interleaved.

    python bench/infer_speed.py [--nets sigma-conv,pythae-conv] [--rounds 3] [--images 2000] [--threads 1]

Each round runs every side as a fresh process, one after another (so a load change on a shared machine hits every
side alike, and no side inherits another's allocator state):

* `bare`: what a user writes without vaecore: `model.eval()`, `torch.inference_mode()`, `model.reconstruct` over
  batches of 500, PyTorch's own kernels;
* `vaecore`: the same loop under `vaecore.utils.evaluating` (the path every evaluation pass, the app's maps and
  comparisons take: `vaecore.runtime.inference.prepare`), with default settings;
* `mse-pass`: the engine's reconstruction-error pass (`metrics.reconstruction_mse`, batch 500) — the same
  arithmetic plus the error per image;
* `deterministic`: the `vaecore` side with `VAECORE_DETERMINISTIC=1` (PyTorch's own kernels and format).

Kernel choices are measured into a fresh cache folder in round 1 and read back afterwards (as a user's second
use reads them); each side reports the median of `--passes` warm passes over `--images` MNIST test images (after
one untimed pass, which for `vaecore` in round 1 includes the measuring), and its first pass. Prints the machine
and its load, the FLOPs per image and the achieved GFLOP/s against the measured matmul peak. Medians over rounds,
with each side's single-round range. With one thread, times are the process's CPU time (robust to other
processes' load); `--wall` times wall-clock instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SIDES = ("bare", "vaecore", "mse-pass", "deterministic")
BATCH = 500


def _model(net: str):  # noqa: ANN202
    import vaecore
    from vaecore.presets import model_config

    return vaecore.build_model(model_config("gaussian-vae", arch=net, latent_dim=16, input_shape=(1, 28, 28)).to_dict(),
                               seed=0)


def worker(side: str, net: str, args: argparse.Namespace) -> dict:
    """One side of one round, in this fresh process."""
    import time

    import machine_report
    import torch

    import vaecore
    from vaecore.evaluation.metrics import reconstruction_mse
    from vaecore.utils import evaluating

    x = vaecore.load_dataset("mnist").x_test[:args.images].contiguous()
    model = _model(net)
    tick = time.perf_counter if args.wall else machine_report.clock()[0]

    def one_pass() -> None:
        if side == "bare":
            model.eval()
            with torch.inference_mode():
                for i in range(0, x.shape[0], BATCH):
                    model.reconstruct(x[i:i + BATCH])
        elif side == "mse-pass":
            reconstruction_mse(model, x, BATCH)
        else:
            with evaluating(model):
                for i in range(0, x.shape[0], BATCH):
                    model.reconstruct(x[i:i + BATCH])

    t = tick()
    one_pass()
    first = tick() - t
    times = []
    for _ in range(args.passes):
        t = tick()
        one_pass()
        times.append(tick() - t)
    model.eval()  # `evaluating` restored the model's training mode (batch norm cannot take one image there)
    with torch.no_grad():
        per_image = machine_report.flops(lambda: model.reconstruct(x[:1]))
    return {"side": side, "net": net, "img_s": x.shape[0] / statistics.median(times), "first_img_s": x.shape[0] / first,
            "flops_per_image": per_image, "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", default="sigma-conv,pythae-conv")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--passes", type=int, default=3, help="timed passes per side (after one untimed)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every side")
    p.add_argument("--sides", default=",".join(SIDES))
    p.add_argument("--wall", action="store_true", help="time wall-clock even with one thread")
    p.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--net", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.net, args)))
        return
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    import machine_report

    text, peak = machine_report.header()
    print(text, flush=True)
    results: dict[tuple[str, str], list[dict]] = {}
    nets, sides = args.nets.split(","), args.sides.split(",")
    with tempfile.TemporaryDirectory() as cache:
        for r in range(args.rounds):
            for net in nets:
                for side in sides:
                    env = {**os.environ, "VAECORE_CACHE_DIR": cache, "PYTHONPATH": str(ROOT),
                           **({"VAECORE_DETERMINISTIC": "1"} if side == "deterministic" else {})}
                    cmd = [sys.executable, __file__, "--worker", side, "--net", net, "--images", str(args.images),
                           "--passes", str(args.passes), *(["--wall"] if args.wall else [])]
                    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
                    if run.returncode != 0:
                        raise SystemExit(f"{side} on {net} failed:\n{run.stderr[-3000:]}")
                    res = json.loads(run.stdout.strip().splitlines()[-1])
                    results.setdefault((net, side), []).append(res)
                    print(f"round {r + 1} {net:<12} {side:<14} {res['img_s']:8.0f} img/s (first pass "
                          f"{res['first_img_s']:6.0f})  {machine_report.load()}", flush=True)
    print(f"\nmedian over {args.rounds} rounds (single-round range), {args.images} images, batch {BATCH}; "
          f"{machine_report.load()}")
    print("| network | side | images/s | range | first pass | × bare | GFLOP/s (of the peak) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for net in nets:
        bare = statistics.median(x["img_s"] for x in results[(net, "bare")]) if (net, "bare") in results else None
        for side in sides:
            runs = results[(net, side)]
            med = statistics.median(x["img_s"] for x in runs)
            gflops = runs[0]["flops_per_image"] * med / 1e9
            print(f"| {net} | {side} | {med:,.0f} | {min(x['img_s'] for x in runs):,.0f}–"
                  f"{max(x['img_s'] for x in runs):,.0f} | {runs[0]['first_img_s']:,.0f} | "
                  f"{med / bare:.2f}× | {gflops:.1f} ({gflops / peak:.0%}) |" if bare else "")


if __name__ == "__main__":
    main()

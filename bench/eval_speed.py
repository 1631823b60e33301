"""The app's longest wait: evaluating a model that has no stored evaluation with the likelihood comparison's
settings, in vaecore's default settings against the bit-for-bit path, interleaved.

    python bench/eval_speed.py [--models sigma-vae,gaussian-vae,iwae] [--rounds 2] [--n-test 500] [--k 100]

The likelihood comparison page computes, for a model without a stored evaluation (a fresh run), `evaluate` over
its default metrics (ELBO, IWAE, −log p, bits/dim, −log p (deq.), MSE, KL, active units) on the first `--n-test`
test images with K = `--k` importance samples. Each round runs, per model, a fresh process with default settings
(`default`: measured kernels and memory format, cached per machine; the cache starts empty in round 1, so its
measuring is counted there) and one with `VAECORE_DETERMINISTIC=1` (`deterministic`: PyTorch's own kernels,
what vaecore did before the fast path was the default). Target: under 20 s per model on 2 idle cores (bundled
models show their stored evaluation at once). With `--threads 1` the figure is the process's CPU time (robust to
other processes' load, and an upper bound for 2 idle cores); otherwise wall time. Prints the machine and its load.
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
METRICS = ("elbo", "iwae", "nll-discrete", "bpd", "nll-dequant", "mse", "kl", "active-units")


def worker(name: str, args: argparse.Namespace) -> dict:
    """Evaluate one bundled model (loaded as the app loads it) in this fresh process."""
    import time

    import machine_report

    import vaecore
    from vaecore.evaluation.metrics import evaluate

    model = vaecore.load(name)
    data = vaecore.load_dataset("mnist")
    tick = machine_report.clock()[0]
    t, wall = tick(), time.perf_counter()
    out = evaluate(model, data, list(METRICS), n_test=args.n_test, iwae_k=args.k)
    return {"seconds": tick() - t, "wall": time.perf_counter() - wall, "nll": out.get("nll-discrete")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="sigma-vae,gaussian-vae,iwae", help="bundled checkpoint names")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    import machine_report

    print(machine_report.header()[0], flush=True)
    models, sides = args.models.split(","), ("default", "deterministic")
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as cache:
        for r in range(args.rounds):
            for name in models:
                for side in sides:
                    env = {**os.environ, "VAECORE_CACHE_DIR": cache, "PYTHONPATH": str(ROOT),
                           **({"VAECORE_DETERMINISTIC": "1"} if side == "deterministic" else {})}
                    cmd = [sys.executable, __file__, "--worker", name, "--n-test", str(args.n_test), "--k",
                           str(args.k), "--threads", str(args.threads)]
                    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
                    if run.returncode != 0:
                        raise SystemExit(f"{name} ({side}) failed:\n{run.stderr[-3000:]}")
                    res = json.loads(run.stdout.strip().splitlines()[-1])
                    results.setdefault((name, side), []).append(res)
                    print(f"round {r + 1} {name:<14} {side:<13} {res['seconds']:6.1f} s (wall {res['wall']:6.1f} s)"
                          f"  −log p {res['nll']}  ({machine_report.load()})", flush=True)
    clock = machine_report.clock()[1]
    print(f"\n{args.n_test} test images, K = {args.k}, {args.threads} thread(s), timed by {clock}; median over "
          f"{args.rounds} round(s) (range); {machine_report.load()} at the end")
    print("| model | default s | deterministic s | speed-up |")
    print("| --- | --- | --- | --- |")
    for name in models:
        cell = {}
        for side in sides:
            runs = [x["seconds"] for x in results[(name, side)]]
            cell[side] = (statistics.median(runs), min(runs), max(runs))
        d, b = cell["default"], cell["deterministic"]
        print(f"| {name} | {d[0]:.1f} ({d[1]:.1f}–{d[2]:.1f}) | {b[0]:.1f} ({b[1]:.1f}–{b[2]:.1f}) | "
              f"{b[0] / d[0]:.2f}× |")


if __name__ == "__main__":
    main()

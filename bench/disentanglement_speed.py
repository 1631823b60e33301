"""How long every disentanglement metric takes for one model on 10,000 test images of procedural dSprites
(target: under a minute on 2 cores), metric by metric.

    python bench/disentanglement_speed.py                       # the bundled checkpoints/dsprites-vae (or a fresh
                                                                # burgess-conv model when none is bundled)
    python bench/disentanglement_speed.py --model runs/x --threads 2 --n 10000 --json out.json

It times the steps `evaluate` runs for the `disentanglement` metrics: encoding the test images, MIG,
modularity, SAP, DCI, and the β-VAE and FactorVAE scores (which render and encode their own images), in wall
and CPU seconds, and prints the load average beside the figures (the machine is shared: a busy machine is slower
in wall time; the CPU time hardly moves with load, and with 2 threads an idle machine's wall time is between
half of it and all of it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "checkpoints" / "dsprites-vae"))
    p.add_argument("--n", type=int, default=10_000, help="test images for MIG, modularity, SAP and DCI")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import vaecore
    from vaecore.evaluation import disentangle as D
    from vaecore.evaluation.metrics import latent_means, model_codes, varying_classes
    from vaecore.evaluation.registry import METRICS
    from vaecore.files import CONFIG
    from vaecore.presets import build_preset

    data = vaecore.load_dataset("dsprites-procedural", progress=True)
    if Path(args.model, CONFIG).is_file():
        model, which = vaecore.load(args.model), args.model
    else:
        model = build_preset("bernoulli-vae", data=data, seed=0, arch="burgess-conv", latent_dim=10)
        which = "a fresh burgess-conv VAE (no model at --model)"
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name: str, fn, *a, **kw):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*a, **kw)
        times[name], cpu[name] = time.perf_counter() - t, time.process_time() - c
        return out

    x = data.take("test", slice(0, args.n))
    _, _, classes = varying_classes(data, "test", args.n)
    z = timed("encode test images", latent_means, model, x)
    codes = z.double().numpy()
    for key, fn in (("mig", D.mig), ("modularity", D.modularity), ("sap", D.sap), ("dci", D.dci)):
        timed(METRICS[key].short, fn, codes, classes)
    source = model_codes(model, data)  # the two classifier scores render and encode their own images
    for key, fn in (("beta-vae-score", D.beta_vae_score), ("factor-vae-score", D.factor_vae_score)):
        timed(METRICS[key].short, fn, source)
    total = sum(times.values())
    load = os.getloadavg()
    print(f"model: {which}; {args.n:,} test images; {args.threads} threads; torch {torch.__version__}; "
          f"load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'':>20}  {'wall':>8}  {'CPU':>8}   (CPU: this process's user + system time, all threads)")
    for k, v in times.items():
        print(f"{k:>20}: {v:7.1f} s {cpu[k]:7.1f} s")
    print(f"{'total':>20}: {total:7.1f} s {sum(cpu.values()):7.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": which, "n": args.n, "threads": args.threads,
                                               "seconds": times, "cpu_seconds": cpu, "total": total,
                                               "cpu_total": sum(cpu.values()), "loadavg": load}, indent=1))


if __name__ == "__main__":
    main()

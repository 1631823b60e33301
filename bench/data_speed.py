"""Data at scale: cache build time, loader throughput against the training step, and peak memory.

    nice -n 10 python bench/data_speed.py [--n 50000] [--big 200000] [--workdir /tmp/vaecore-data-bench]
                                          [--threads 2] [--workers 2] [--dsprites] [--json out.json]

1. writes a folder of N random 64×64 RGB PNGs (kept for later runs), then times the cache build of
   `load_dataset("imagefolder", …)` in a fresh cache (a subprocess: its peak RSS is reported);
2. loader throughput: the training batches (128 images, this process's only rank) read from the on-disk
   cache by the DataLoader with `--workers` processes, and from memory, as float32 tensors on the
   device (the CPU here), against the training throughput of `sigma-vae` (sigma-conv) at 64×64×3 on the
   same cores (forward, backward, Adam step); target: loader ≥ 3× the training images/s;
3. a `--big`-image 64×64×3 dataset (2.46 GB at 200,000) in the cache, trained from disk for `--steps`
   steps by the Trainer in a subprocess (target: peak RSS < 2 GB), and the same file read into memory
   (target: resident memory ≤ 1.2× its uint8 size);
4. with `--dsprites`: the procedural dSprites generation time and cache size.
Each measurement runs in its own process (peak RSS: its VmHWM); the figures are printed as
markdown rows and written to `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _write_pngs(args: tuple[str, int, int, int]) -> None:
    import numpy as np
    from PIL import Image

    folder, start, stop, side = args
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        # a smooth random image (low-frequency noise upsampled), so PNGs have realistic sizes
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((side, side), Image.Resampling.BILINEAR)
        img.save(Path(folder) / f"{i // 1000:03d}" / f"{i:06d}.png")


def make_folder(folder: Path, n: int, side: int, workers: int) -> float:
    """N PNGs in subfolders of 1,000 (kept: reused when the count matches); returns seconds spent."""
    marker = folder / f".complete-{n}-{side}"
    if marker.is_file():
        return 0.0
    t = time.perf_counter()
    for k in range((n + 999) // 1000):
        (folder / f"{k:03d}").mkdir(parents=True, exist_ok=True)
    chunks = [(str(folder), s, min(s + 1000, n), side) for s in range(0, n, 1000)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_pngs, chunks))
    marker.write_text("ok")
    return time.perf_counter() - t


def run_child(code: str, env: dict[str, str]) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object last."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, cwd=ROOT)
    if out.returncode or not out.stdout.strip():
        raise SystemExit(f"child failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


PRELUDE = """
import json, sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads({threads})
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key): return int(line.split()[1]) * 1024
def peak(): return status('VmHWM:')  # this process's peak RSS (ru_maxrss can report the parent's after fork)
def rss(): return status('VmRSS:')
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000, help="PNG images to write and cache")
    p.add_argument("--big", type=int, default=200_000, help="images of the larger-than-memory-budget dataset")
    p.add_argument("--side", type=int, default=64)
    p.add_argument("--workdir", default="/tmp/vaecore-data-bench")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--steps", type=int, default=30, help="training steps timed / run from disk")
    p.add_argument("--dsprites", action="store_true", help="also time the procedural dSprites generation")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    work = Path(args.workdir)
    cache = work / "cache"
    env = {"VAECORE_CACHE": str(cache), "OMP_NUM_THREADS": str(args.threads)}
    prelude = PRELUDE.format(root=str(ROOT), threads=args.threads)
    child = lambda body: prelude + textwrap.dedent(body)  # noqa: E731
    fig: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                 "threads": args.threads, "workers": args.workers, "n": args.n, "big": args.big,
                 "load_start": os.getloadavg(), "command": " ".join(sys.argv)}

    folder = work / f"png-{args.n}-{args.side}"
    fig["png_write_s"] = make_folder(folder, args.n, args.side, max(1, args.threads))
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    fig["cache_build"] = run_child(child(f"""
        import vaecore
        t = time.perf_counter()
        ds = vaecore.load_dataset("imagefolder", {str(folder)!r}, storage="disk", progress=False)
        s = time.perf_counter() - t
        print(json.dumps({{"seconds": s, "images_per_s": {args.n} / s, "peak_rss": peak(),
                          "cache_bytes": ds.nbytes, "shape": list(ds.shape)}}))
    """), env)

    fig["loader"] = run_child(child(f"""
        import vaecore
        from vaecore.data.pipeline import TrainBatches
        ds = vaecore.load_dataset("imagefolder", {str(folder)!r}, storage="disk", progress=False)
        out = {{}}
        for name, store, workers in (("disk", ds.images["train"], {args.workers}),
                                     ("disk_0_workers", ds.images["train"], 0),
                                     ("memory", ds.images["train"].to_memory(), 0)):
            tb = TrainBatches(store, batch_size=128, seed=0, device="cpu", workers=workers)
            tb.batch(0, 0)
            steps = min(200, tb.n // 128 - 1)
            t = time.perf_counter()
            for i in range(1, steps + 1):
                x = tb.batch(0, i)
            out[name] = steps * 128 / (time.perf_counter() - t)
        print(json.dumps(out))
    """), env)

    fig["training"] = run_child(child(f"""
        import vaecore
        model = vaecore.build_preset("sigma-vae", input_shape=(3, {args.side}, {args.side}), seed=0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.rand(128, 3, {args.side}, {args.side})
        for i in range({args.steps} + 5):
            if i == 5: t = time.perf_counter()
            loss = model.loss(x).loss
            opt.zero_grad(); loss.backward(); opt.step()
        print(json.dumps({{"images_per_s": {args.steps} * 128 / (time.perf_counter() - t),
                          "arch": model.config.arch}}))
    """), env)
    fig["loader_over_training"] = fig["loader"]["disk"] / fig["training"]["images_per_s"]

    big = work / f"big-{args.big}.npy"
    if not big.is_file():
        import numpy as np

        arr = np.lib.format.open_memmap(big, mode="w+", dtype=np.uint8, shape=(args.big, 3, args.side, args.side))
        rng = np.random.default_rng(0)
        for s in range(0, args.big, 10_000):
            e = min(s + 10_000, args.big)
            arr[s:e] = rng.integers(0, 256, (e - s, 3, 1, 1), dtype=np.uint8)  # per-image colours
        arr.flush()
        del arr
    fig["big_disk_training"] = run_child(child(f"""
        import tempfile, numpy as np, vaecore
        from vaecore.data.storage import FileStore
        from vaecore.config import TrainConfig
        store = FileStore({str(big)!r})
        n = len(store)
        part = lambda a, b: store.subset(np.arange(a, b))
        ds = vaecore.Dataset("big", part(0, n - 2000), None, part(n - 2000, n - 1000), None, part(n - 1000, n), None)
        before = rss()
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            tc = TrainConfig(data="python:big", epochs=1, max_steps={args.steps}, batch_size=128, val_limit=500,
                             checkpoint_every=10**6, sample_grids=False, threads={args.threads},
                             data_workers={args.workers})
            vaecore.train("sigma-vae", ds, out, tc)
            s = time.perf_counter() - t
        print(json.dumps({{"images": n, "bytes": store.nbytes, "peak_rss": peak(), "rss_before": before,
                          "seconds": s}}))
    """), env)

    fig["big_in_memory"] = run_child(child(f"""
        from vaecore.data.storage import FileStore
        before = rss()
        store = FileStore({str(big)!r}).to_memory()
        print(json.dumps({{"bytes": store.nbytes, "rss_growth": rss() - before}}))
    """), env)
    fig["big_in_memory"]["ratio"] = (fig["big_in_memory"]["rss_growth"] / fig["big_in_memory"]["bytes"])

    if args.dsprites:
        fig["dsprites"] = run_child(child("""
            import vaecore
            t = time.perf_counter()
            ds = vaecore.load_dataset("dsprites-procedural", storage="disk", progress=False)
            s = time.perf_counter() - t
            print(json.dumps({"seconds": s, "images": sum(ds.size(k) for k in ("train", "val", "test")),
                              "cache_bytes": ds.factors.grid.nbytes, "peak_rss": peak()}))
        """), env)

    fig["load_end"] = os.getloadavg()
    gb = 2**30
    print(f"machine: {fig['machine']}; torch threads {args.threads}; DataLoader workers {args.workers}; load "
          f"average (1, 5, 15 min) {', '.join(f'{v:.1f}' for v in fig['load_start'])} at the start, "
          f"{', '.join(f'{v:.1f}' for v in fig['load_end'])} at the end")
    print("| figure | value | target |\n| --- | --- | --- |")
    cb = fig["cache_build"]
    print(f"| cache build, {args.n:,} PNGs {args.side}×{args.side} RGB | {cb['seconds']:.1f} s "
          f"({cb['images_per_s']:.0f} images/s), peak RSS {cb['peak_rss'] / gb:.2f} GiB, cache "
          f"{cb['cache_bytes'] / gb:.2f} GiB | – |")
    ld = fig["loader"]
    print(f"| loader, disk cache, {args.workers} workers | {ld['disk']:.0f} images/s | ≥ 3× training |")
    print(f"| loader, disk cache, in-process | {ld['disk_0_workers']:.0f} images/s | – |")
    print(f"| loader, in memory | {ld['memory']:.0f} images/s | – |")
    print(f"| training, sigma-vae ({fig['training']['arch']}) {args.side}×{args.side}×3, batch 128 | "
          f"{fig['training']['images_per_s']:.0f} images/s | – |")
    print(f"| loader / training | {fig['loader_over_training']:.1f}× | ≥ 3× |")
    bd = fig["big_disk_training"]
    print(f"| {bd['images']:,} images ({bd['bytes'] / gb:.2f} GiB) trained from disk, {args.steps} steps | peak RSS "
          f"{bd['peak_rss'] / gb:.2f} GiB | < 2 GB |")
    print(f"| the same as float32 in RAM (4 bytes a value, the former storage) | {4 * bd['bytes'] / gb:.2f} GiB | – |")
    bm = fig["big_in_memory"]
    print(f"| the same in memory | {bm['rss_growth'] / gb:.2f} GiB resident for {bm['bytes'] / gb:.2f} GiB of uint8 "
          f"({bm['ratio']:.2f}×) | ≤ 1.2× |")
    if "dsprites" in fig:
        d = fig["dsprites"]
        print(f"| procedural dSprites ({d['images']:,} images) | generated and cached in {d['seconds']:.0f} s, "
              f"cache {d['cache_bytes'] / gb:.2f} GiB, peak RSS {d['peak_rss'] / gb:.2f} GiB | – |")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")


if __name__ == "__main__":
    main()

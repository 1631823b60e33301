"""vaecore against Pythae 0.1.2 side by side: same network, data, batch, optimizer and epochs.

    python bench/race_pythae.py [--rounds 3] [--nets pythae-conv,sigma-conv] [--limit 10000]

Pythae runs in its own virtualenv (its pins differ from ours): by default `.venv-pythae/` in the repository,
created once with

    python3 -m venv .venv-pythae && .venv-pythae/bin/pip install torch==2.13.0 \
        --index-url https://download.pytorch.org/whl/cpu && .venv-pythae/bin/pip install pythae==0.1.2

(`--pythae-python PATH` or PYTHAE_PYTHON=PATH points at another one). Each round runs, as fresh processes one
after another, vaecore's
`Trainer.fit()`, Pythae's `TrainingPipeline` and a bare PyTorch loop over vaecore's model; the
rounds interleave, so a load change on a shared machine hits every side alike. Work per side:
one epoch of the first `--limit` MNIST training images, batch 100, Adam lr 1e-4, σ = 1 Gaussian
(Pythae's "mse" loss), latent 16, validation on 1,000 images; vaecore also writes its checkpoint,
model, best model and sample grids, Pythae its final model; the bare loop trains and validates
only. Inference: encode + decode 2,000 test images, batch 500 (median of `--infer-passes` after a warm-up).
Prints the machine (CPU model, ISA flags and the ISA the kernels use, threads, torch), the load average beside
every side's figures, the median over rounds of each figure with its single-round range, the ratios, each side's
peak resident memory, and the achieved GFLOP/s of training (FLOPs of a training step per image × images/s)
against the measured matmul peak of the same machine, dtype and threads.

vaecore's side runs in **default settings** (measured conv kernels on, cached per machine: the cache starts empty
in round 1, so its measuring is counted there, and is read back in later rounds, as a user's second run reads
it); `--deterministic` runs it bit for bit instead (PyTorch's own kernels). Its inference is the user's path:
the saved model loaded from the run folder and `reconstruct` under `vaecore.utils.evaluating` (what every
evaluation pass and the app use). The bare loop is what a user writes without vaecore: PyTorch's own kernels,
`model.eval()` + `torch.inference_mode()` (`--bare-kernels vaecore` gives it vaecore's measured kernels).
With one thread on the CPU (`--threads 1`), every side times the process's CPU time, so other processes' load
(taking turns on the core) does not count; the wall-clock ratio of training is printed beside it.
`--amp bf16` runs vaecore's side and the bare loop (training and inference) under CPU bf16
autocast; Pythae stays fp32 (it has no CPU mixed precision), so that ratio compares vaecore's
fastest CPU setting with Pythae's only one. `--device cuda` runs every side on the GPU (vaecore and
the bare loop keep the data there; Pythae's trainer loads it batch by batch as it does; every timing is taken
after `torch.cuda.synchronize()`), where `--amp fp16` adds a GradScaler and the peak is GPU memory allocated;
`--tf32` lets fp32 matrix products and convolutions of vaecore's side and the bare loop use TF32 tensor cores;
`--compile` compiles the loss of vaecore's side and the bare loop (its compile time is counted).
`bench/gpu_session.sh` runs the GPU ones.
Every side imports torch._dynamo (which creating a torch optimizer pulls in, seconds on a slow
machine) before starting its clock, so one-off import time is not counted on any side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PYTHAE_PYTHON = ROOT / ".venv-pythae" / "bin" / "python"  # the default; PYTHAE_PYTHON / --pythae-python override it
VENV_HELP = ("python3 -m venv .venv-pythae && .venv-pythae/bin/pip install torch==2.13.0 --index-url "
             "https://download.pytorch.org/whl/cpu && .venv-pythae/bin/pip install pythae==0.1.2")


def _peak_mb(device: str = "cpu") -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident memory."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    from machine_report import peak_rss_mb

    return peak_rss_mb()


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _tick(device: str):  # noqa: ANN202
    """The clock of every side: the process's CPU time with one thread on the CPU, else wall time."""
    import torch

    return time.process_time if device == "cpu" and torch.get_num_threads() == 1 else time.perf_counter


def _model(net: str, latent: int):  # noqa: ANN202
    import vaecore
    from vaecore.presets import model_config

    return vaecore.build_model(model_config("gaussian-vae", arch=net, latent_dim=latent,
                                            input_shape=(1, 28, 28)).to_dict(), seed=0)


def _autocast(device: str, amp: str):  # noqa: ANN202
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp, torch.float32)
    return torch.autocast(device, dtype=dtype, enabled=amp != "none")


def _infer_img_s(model, x, passes: int, amp: str = "none", device: str = "cpu", engine: bool = False) -> float:  # noqa: ANN001
    """Images/s of encode + decode over `x` in batches of 500: median of `passes` after a warm-up pass; through
    vaecore's inference path (`evaluating`) when `engine`, else a bare `model.eval()` + `torch.inference_mode()`."""
    import contextlib

    import torch

    from vaecore.utils import evaluating

    x = x.to(device)
    tick = _tick(device)
    model.eval()
    times = []
    mode = evaluating(model) if engine else contextlib.nullcontext()
    with mode, torch.inference_mode(), _autocast(device, amp):
        for _ in range(passes + 1):
            _sync(device)
            t = tick()
            for i in range(0, x.shape[0], 500):
                model.reconstruct(x[i:i + 500])
            _sync(device)
            times.append(tick() - t)
    return x.shape[0] / statistics.median(times[1:])


def _step_flops(net: str, latent: int, batch: int) -> int:
    """FLOPs of one training step (loss forward and backward) of a batch, counted on a fresh model."""
    import torch
    from machine_report import flops

    model = _model(net, latent)
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return flops(lambda: model.loss(x).loss.backward())


def worker(side: str, net: str, data_path: str, args: argparse.Namespace) -> dict:
    """One side of one round, in this (fresh) process."""
    import numpy as np
    import torch
    import torch._dynamo  # noqa: F401  (the first optimizer imports it; every side imports it before its clock)

    import vaecore

    data = np.load(data_path)
    x_train, x_val, x_test = (torch.from_numpy(data[k]) for k in ("x_train", "x_val", "x_test"))
    model = _model(net, args.latent_dim)
    dev = args.device
    if dev == "cuda":
        torch.cuda.init()  # CUDA's start-up is not training time, on any side
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    tick = _tick(dev)
    t, wall = tick(), time.perf_counter()
    if side == "vaecore":
        ds = vaecore.Dataset(name="mnist", x_train=x_train, y_train=None, x_val=x_val, y_val=None, x_test=x_test,
                             y_test=None)
        tc = vaecore.TrainConfig(data="mnist", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 val_limit=x_val.shape[0], channels_last=args.channels_last, device=dev,
                                 amp=args.amp, compile=args.compile, deterministic=args.deterministic)
        with tempfile.TemporaryDirectory() as out:
            vaecore.Trainer(model, ds, tc, Path(out) / "run").fit()
            _sync(dev)
            train_s, train_wall_s = tick() - t, time.perf_counter() - wall
            from vaecore.hub import load_folder

            model = load_folder(Path(out) / "run", device=dev)  # the user's path: the saved model, loaded
            infer = _infer_img_s(model, x_test, args.infer_passes, args.amp, dev, engine=True)
    else:  # the data resident on the device, as vaecore's Trainer keeps it
        model.to(dev)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
            x_train, x_val = (t.contiguous(memory_format=torch.channels_last) for t in (x_train, x_val))
        if args.bare_kernels == "vaecore":
            from vaecore.runtime import conv_autotune

            conv_autotune.enable(model)
        x_train, x_val = x_train.to(dev), x_val.to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        scaler = torch.amp.GradScaler(dev, enabled=args.amp == "fp16")
        loss_fn = torch.compile(model.loss) if args.compile else model.loss
        g = torch.Generator(device=dev).manual_seed(0)
        for _ in range(args.epochs):
            model.train()
            perm = torch.randperm(x_train.shape[0], generator=g, device=dev)
            for i in range(0, x_train.shape[0] - args.batch_size + 1, args.batch_size):
                with _autocast(dev, args.amp):
                    loss = loss_fn(x_train[perm[i:i + args.batch_size]]).loss
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            model.eval()
            with torch.no_grad():
                val = sum(float(model.loss(x_val[i:i + 500]).loss) for i in range(0, x_val.shape[0], 500))
            assert val == val
        _sync(dev)
        train_s, train_wall_s = tick() - t, time.perf_counter() - wall
        infer = _infer_img_s(model, x_test, args.infer_passes, args.amp, dev)
    return {"side": side, "net": net, "params": sum(p.numel() for p in model.parameters()), "train_s": train_s,
            "train_wall_s": train_wall_s, "train_img_s": args.epochs * x_train.shape[0] / train_s,
            "infer_img_s": infer, "threads": torch.get_num_threads(), "peak_mb": _peak_mb(dev)}


def _run(cmd: list[str], env: dict[str, str]) -> dict:
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} … failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _range(runs: list[dict], key: str) -> str:
    return f"{min(x[key] for x in runs):,.0f}–{max(x[key] for x in runs):,.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nets", default="pythae-conv,sigma-conv")
    p.add_argument("--limit", type=int, default=10_000, help="training images (the first N of MNIST train)")
    p.add_argument("--val", type=int, default=1000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--infer-passes", type=int, default=3, help="timed inference passes (after one warm-up)")
    p.add_argument("--channels-last", action="store_true",
                   help="vaecore side and the bare loop: channels-last memory format for training")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                   help="vaecore side and the bare loop: bf16 autocast (CPU: AMX / AVX-512 BF16; GPU), or fp16 "
                        "with a GradScaler (GPU only)")
    p.add_argument("--deterministic", action="store_true",
                   help="vaecore side: bit for bit (PyTorch's own kernels) instead of the default fast path")
    p.add_argument("--bare-kernels", choices=("pytorch", "vaecore"), default="pytorch",
                   help="the bare loop's conv kernels: PyTorch's own (default), or vaecore's measured ones")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="every side's device")
    p.add_argument("--tf32", action="store_true", help="CUDA: TF32 for fp32 products and convolutions "
                   "(vaecore side and the bare loop)")
    p.add_argument("--compile", action="store_true", help="vaecore side and the bare loop: torch.compile the loss")
    p.add_argument("--threads", type=int, help="torch threads of every side (OMP_NUM_THREADS); default: torch's")
    p.add_argument("--pythae-python", default=os.environ.get("PYTHAE_PYTHON", str(PYTHAE_PYTHON)),
                   help="the Python of a virtualenv with pythae==0.1.2 (default: $PYTHAE_PYTHON, else .venv-pythae/)")
    p.add_argument("--worker", choices=("vaecore", "bare"), help=argparse.SUPPRESS)
    p.add_argument("--net", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.net, args.data, args)))
        return
    if args.amp == "fp16" and args.device != "cuda":
        raise SystemExit("--amp fp16 needs --device cuda (on the CPU use --amp bf16)")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: this machine has no CUDA GPU")
    if not Path(args.pythae_python).exists():
        raise SystemExit(f"no Pythae virtualenv at {args.pythae_python}; create it (in the repository root) with\n"
                         f"  {VENV_HELP}\nor point at one with --pythae-python PATH or PYTHAE_PYTHON=PATH")

    import machine_report
    import numpy as np
    import torch

    import vaecore

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":  # the peak below in the race's own arithmetic
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp, torch.float32)
    text, peak = machine_report.header(amp_dtype, args.device)
    print(text, flush=True)
    ds = vaecore.load_dataset("mnist")
    arrays = {"x_train": ds.x_train[:args.limit].numpy(), "x_val": ds.x_val[:args.val].numpy(),
              "x_test": ds.x_test[:args.test].numpy()}
    common = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--latent-dim", str(args.latent_dim), "--infer-passes", str(args.infer_passes), "--device", args.device]
    nets = args.nets.split(",")
    flops = {net: _step_flops(net, args.latent_dim, args.batch_size) / args.batch_size for net in nets}
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data.npz")
        np.savez(data, **arrays)
        env = {"VAECORE_CACHE_DIR": str(Path(tmp) / "kernel-cache"),  # empty in round 1: measuring is counted
               **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
        print(f"{args.limit} training images, batch {args.batch_size}, {args.epochs} epoch(s), {args.rounds} rounds; "
              f"device {args.device}, amp {args.amp}{', TF32' if args.tf32 else ''}"
              f"{', compiled' if args.compile else ''}; vaecore "
              f"{'--deterministic' if args.deterministic else 'default settings'}, bare loop with "
              f"{args.bare_kernels} kernels", flush=True)
        for r in range(args.rounds):
            for net in nets:
                own = [sys.executable, __file__, "--net", net, "--data", data, *common, "--amp", args.amp,
                       "--bare-kernels", args.bare_kernels] + \
                    (["--channels-last"] if args.channels_last else []) + (["--compile"] if args.compile else []) + \
                    (["--deterministic"] if args.deterministic else []) + (["--tf32"] if args.tf32 else [])
                for side, cmd in (("vaecore", [*own, "--worker", "vaecore"]),
                                  ("pythae", [args.pythae_python, str(ROOT / "bench" / "pythae_worker.py"), "--net",
                                              net, "--data", data, "--out", str(Path(tmp) / "pythae"), *common]),
                                  ("bare", [*own, "--worker", "bare"])):
                    before = machine_report.load()
                    res = _run(cmd, env)
                    res["train_wall_img_s"] = args.epochs * args.limit / res.get("train_wall_s", res["train_s"])
                    results.setdefault((net, side), []).append(res)
                    print(f"round {r + 1} {net:<12} {side:<8} train {res['train_img_s']:7.0f} img/s  "
                          f"infer {res['infer_img_s']:7.0f} img/s  peak {res['peak_mb']:5.0f} MB  ({before})",
                          flush=True)
    clock = "CPU time, 1 thread" if args.device == "cpu" and torch.get_num_threads() == 1 else "wall time"
    print(f"\nmedian over {args.rounds} round(s) (single-round range), timed by {clock}; {machine_report.load()} "
          "at the end")
    memory = "GPU allocated" if args.device == "cuda" else "RSS"
    print(f"| network | side | params | train img/s | range | inference img/s | range | training GFLOP/s (of "
          f"{peak:.0f} peak) | peak {memory} MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    keys = ("train_img_s", "infer_img_s", "peak_mb", "train_wall_img_s")
    med = {k: {f: statistics.median(x[f] for x in v) for f in keys} for k, v in results.items()}
    for (net, side), m in med.items():
        runs = results[(net, side)]
        gf = flops[net] * m["train_img_s"] / 1e9
        print(f"| {net} | {side} | {runs[0]['params'] / 1e6:.2f}M | {m['train_img_s']:,.0f} | "
              f"{_range(runs, 'train_img_s')} | {m['infer_img_s']:,.0f} | {_range(runs, 'infer_img_s')} | "
              f"{gf:.1f} ({gf / peak:.0%}) | {m['peak_mb']:.0f} |")
    for net in nets:
        v, py, bare = med[(net, "vaecore")], med[(net, "pythae")], med[(net, "bare")]
        print(f"{net}: training {v['train_img_s'] / py['train_img_s']:.2f}x Pythae (wall clock "
              f"{v['train_wall_img_s'] / py['train_wall_img_s']:.2f}x), inference "
              f"{v['infer_img_s'] / py['infer_img_s']:.2f}x Pythae and {v['infer_img_s'] / bare['infer_img_s']:.2f}x "
              f"the bare loop; whole run {v['train_img_s'] / bare['train_img_s']:.2f}x the bare loop; "
              f"{flops[net] / 1e6:.1f} MFLOP per training image")


if __name__ == "__main__":
    main()

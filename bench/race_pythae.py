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
Prints the median over rounds of each figure, the ratios, and each side's peak resident memory.
`--amp bf16` runs vaecore's side and the bare loop (training and inference) under CPU bf16
autocast; Pythae stays fp32 (it has no CPU mixed precision), so that ratio compares vaecore's
fastest CPU setting with Pythae's only one. `--device cuda` runs every side on the GPU (vaecore and
the bare loop keep the data there; Pythae's trainer loads it batch by batch as it does), where
`--amp fp16` adds a GradScaler and the peak is GPU memory allocated; `--compile` compiles the loss of
vaecore's side and the bare loop (its compile time is counted); `--conv-autotune` lets each conv
layer of both keep the faster of oneDNN and a GEMM lowering (the timing on the first batch counted).
`bench/gpu_session.sh` runs the GPU ones.
Every side imports torch._dynamo (which creating a torch optimizer pulls in, seconds on a slow
machine) before starting its clock, so one-off import time is not counted on any side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHAE_PYTHON = ROOT / ".venv-pythae" / "bin" / "python"  # the default; PYTHAE_PYTHON / --pythae-python override it
VENV_HELP = ("python3 -m venv .venv-pythae && .venv-pythae/bin/pip install torch==2.13.0 --index-url "
             "https://download.pytorch.org/whl/cpu && .venv-pythae/bin/pip install pythae==0.1.2")


def _peak_mb(device: str = "cpu") -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak resident memory."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _model(net: str, latent: int):  # noqa: ANN202
    import vaecore
    from vaecore.presets import model_config

    return vaecore.build_model(model_config("gaussian-vae", arch=net, latent_dim=latent,
                                            input_shape=(1, 28, 28)).to_dict(), seed=0)


def _autocast(device: str, amp: str):  # noqa: ANN202
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp, torch.float32)
    return torch.autocast(device, dtype=dtype, enabled=amp != "none")


def _infer_img_s(model, x, passes: int, amp: str = "none", device: str = "cpu") -> float:  # noqa: ANN001
    import torch

    model.eval()
    x = x.to(device)
    times = []
    with torch.inference_mode(), _autocast(device, amp):
        for _ in range(passes + 1):
            _sync(device)
            t = time.perf_counter()
            for i in range(0, x.shape[0], 500):
                model.reconstruct(x[i:i + 500])
            _sync(device)
            times.append(time.perf_counter() - t)
    return x.shape[0] / statistics.median(times[1:])


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
    t = time.perf_counter()
    if side == "vaecore":
        ds = vaecore.Dataset(name="mnist", x_train=x_train, y_train=None, x_val=x_val, y_val=None, x_test=x_test,
                             y_test=None)
        tc = vaecore.TrainConfig(data="mnist", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 val_limit=x_val.shape[0], channels_last=args.channels_last, device=dev,
                                 amp=args.amp, compile=args.compile, conv_autotune=args.conv_autotune)
        with tempfile.TemporaryDirectory() as out:
            vaecore.Trainer(model, ds, tc, Path(out) / "run").fit()
    else:  # the data resident on the device, as vaecore's Trainer keeps it
        model.to(dev)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
            x_train, x_val = (t.contiguous(memory_format=torch.channels_last) for t in (x_train, x_val))
        if args.conv_autotune:
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
    train_s = time.perf_counter() - t
    return {"side": side, "net": net, "params": sum(p.numel() for p in model.parameters()), "train_s": train_s,
            "train_img_s": args.epochs * x_train.shape[0] / train_s,
            "infer_img_s": _infer_img_s(model, x_test, args.infer_passes, args.amp, dev),
            "threads": torch.get_num_threads(), "peak_mb": _peak_mb(dev)}


def _run(cmd: list[str], threads: int | None) -> dict:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} … failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


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
                   help="vaecore side and the bare loop: channels-last memory format")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                   help="vaecore side and the bare loop: bf16 autocast (CPU: AMX / AVX-512 BF16; GPU), or fp16 "
                        "with a GradScaler (GPU only)")
    p.add_argument("--conv-autotune", action="store_true",
                   help="vaecore side and the bare loop: each conv layer keeps the faster of oneDNN and a GEMM "
                        "lowering (timed on its first batch, the timing counted)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="every side's device")
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

    import numpy as np

    import vaecore

    ds = vaecore.load_dataset("mnist")
    arrays = {"x_train": ds.x_train[:args.limit].numpy(), "x_val": ds.x_val[:args.val].numpy(),
              "x_test": ds.x_test[:args.test].numpy()}
    common = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--latent-dim", str(args.latent_dim), "--infer-passes", str(args.infer_passes), "--device", args.device]
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data.npz")
        np.savez(data, **arrays)
        print(f"{args.limit} training images, batch {args.batch_size}, {args.epochs} epoch(s), {args.rounds} rounds; "
              f"{os.cpu_count()} CPUs (shared: other processes' load affects every side); device {args.device}, "
              f"amp {args.amp}{', compiled' if args.compile else ''}"
              f"{', conv kernels autotuned' if args.conv_autotune else ''}", flush=True)
        for r in range(args.rounds):
            for net in args.nets.split(","):
                own = [sys.executable, __file__, "--net", net, "--data", data, *common, "--amp", args.amp] + \
                    (["--channels-last"] if args.channels_last else []) + (["--compile"] if args.compile else []) + \
                    (["--conv-autotune"] if args.conv_autotune else [])
                for side, cmd in (("vaecore", [*own, "--worker", "vaecore"]),
                                  ("pythae", [args.pythae_python, str(ROOT / "bench" / "pythae_worker.py"), "--net",
                                              net, "--data", data, "--out", str(Path(tmp) / "pythae"), *common]),
                                  ("bare", [*own, "--worker", "bare"])):
                    res = _run(cmd, args.threads)
                    results.setdefault((net, side), []).append(res)
                    print(f"round {r + 1} {net:<12} {side:<8} train {res['train_img_s']:7.0f} img/s  "
                          f"infer {res['infer_img_s']:7.0f} img/s  peak {res['peak_mb']:5.0f} MB", flush=True)
    print("\nmedian over rounds")
    memory = "GPU allocated" if args.device == "cuda" else "RSS"
    print(f"| network | side | params | train img/s | inference img/s | peak {memory} MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("train_img_s", "infer_img_s", "peak_mb")}
           for k, v in results.items()}
    for (net, side), m in med.items():
        params = results[(net, side)][0]["params"]
        print(f"| {net} | {side} | {params / 1e6:.2f}M | {m['train_img_s']:.0f} | {m['infer_img_s']:.0f} | "
              f"{m['peak_mb']:.0f} |")
    for net in args.nets.split(","):
        v, py, bare = med[(net, "vaecore")], med[(net, "pythae")], med[(net, "bare")]
        print(f"{net}: training {v['train_img_s'] / py['train_img_s']:.2f}x Pythae, inference "
              f"{v['infer_img_s'] / py['infer_img_s']:.2f}x Pythae; whole run "
              f"{v['train_img_s'] / bare['train_img_s']:.2f}x the bare loop")


if __name__ == "__main__":
    main()

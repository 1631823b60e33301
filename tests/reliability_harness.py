"""Kill -9 harness for tests/test_reliability_runs.py: `python tests/reliability_harness.py WORKDIR KILLS SEED`.

Imports vaecore once, then forks one child per training attempt so each attempt starts in milliseconds.
Phase 1 (chain): a tiny run that checkpoints every step is SIGKILLed again and again — at random moments
(or after its third checkpoint, whichever comes first) and inside each file write (just before and just after
each rename, and mid-append of metrics.jsonl); after every kill the folder is copied to WORKDIR/snaps/N and the
next child resumes it. A last child finishes it.
Phase 2: the same run uninterrupted, as the reference. Phase 3: a long run in a third folder while this
process loads it over and over like a reader would (after its last fork, so torch is used only then).
Prints one JSON line with what happened.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from budget import seconds

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = int(os.environ.get("VAE_KILL_STEPS", "120"))
# A child killed at a random moment also kills itself after its QUOTA-th checkpoint, so that however fast the
# machine, the chain (at most 4 steps per injected fault, QUOTA per random kill) ends before step STEPS.
QUOTA = 3
FAULT_FILES = ("checkpoint.safetensors", "model.safetensors", "config.json", "train.json", "samples.png",
               "README.md", "metrics.jsonl")


def _config(max_steps: int):
    from vaecore import TrainConfig

    return TrainConfig(data="digits", limit=96, max_steps=max_steps, epochs=1000, batch_size=32, log_every=1,
                       val_limit=64, checkpoint_every=1, seed=0)


def _train(folder: Path, max_steps: int) -> None:
    """Start the run, or resume it when the folder holds one (the dataset comes from train.json)."""
    import vaecore
    from vaecore.training import run_folder

    if run_folder.holds_run(folder):
        vaecore.Trainer.resume(folder, max_steps=max_steps).fit()
    else:
        data = vaecore.load_dataset("digits", limit=96)
        vaecore.train("sigma-vae", data, folder, _config(max_steps), arch="mlp", latent_dim=4)


def _install_fault(fault: tuple[str, int, str]) -> None:
    """SIGKILL this process at the n-th write of a file: just before or after its rename, or mid-append."""
    from vaecore.training import run_folder

    name, nth, when = fault
    seen = {"n": 0}
    if name == "metrics.jsonl" and when == "append":
        real_append = run_folder._append

        def torn_append(path: Path, data: bytes) -> None:
            seen["n"] += 1
            if seen["n"] == nth:
                with open(path, "ab") as f:
                    f.write(data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            real_append(path, data)

        run_folder._append = torn_append
        return
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):  # noqa: ANN001, ANN202
        if Path(dst).name == name:
            seen["n"] += 1
            if seen["n"] == nth and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst, *args, **kwargs)
            if seen["n"] == nth and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return
        real_replace(src, dst, *args, **kwargs)

    os.replace = replace


def _child(folder: Path, max_steps: int, fault: tuple[str, int, str] | None) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            import torch

            torch.set_num_threads(1)
            if fault:
                _install_fault(fault)
            _train(folder, max_steps)
        except BaseException as e:
            from vaecore.training.run_folder import RunLockedError

            code = 4 if isinstance(e, RunLockedError) else 3
            if code == 3:
                traceback.print_exc()
        os._exit(code)
    return pid


def _wait(pid: int, timeout: float) -> int | None:
    """Exit code, -signal, or None when the child still runs after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    return None


def _kill(pid: int) -> int:
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def chain(work: Path, kills: int, rng: random.Random) -> list[dict]:
    folder = work / "run"
    once = ("config.json", "train.json")  # written once per run / per child: their first write is the one
    faults = [(name, 1 if name in once else rng.randint(1, 4), when) for name in FAULT_FILES
              for when in ("before", "after") if name not in ("config.json", "metrics.jsonl")]
    faults += [("metrics.jsonl", 3, "append"), ("metrics.jsonl", 1, "before")]  # a torn line; the resume rewrite
    rest: list[tuple[str, int, str] | None] = [*faults, *[None] * max(0, kills - len(faults) - 3)]
    rng.shuffle(rest)
    # a new run writes config.json once, before its first checkpoint; every later child resumes
    plan = [("config.json", 1, "before"), ("config.json", 1, "after"), ("checkpoint.safetensors", 2, "after"), *rest]
    events = []
    for i, fault in enumerate(plan):
        pid = _child(folder, STEPS, fault or ("checkpoint.safetensors", QUOTA, "after"))
        code = _wait(pid, rng.uniform(0.02, 0.3) if fault is None else seconds(60))
        if code is None:
            code = _kill(pid)
        snap = work / "snaps" / f"{i:03d}"
        if folder.exists():
            shutil.copytree(folder, snap)
        events.append({"i": i, "fault": list(fault) if fault else "random", "exit": code, "snap": str(snap)})
    pid = _child(folder, STEPS, None)
    events.append({"i": "final", "exit": _wait(pid, seconds(300))})
    return events


def live_loads(work: Path, loads: int) -> dict:
    """Train in a child while this process loads the live folder as a reader; count failures by message."""
    folder = work / "live"
    pid = _child(folder, 100_000, None)
    deadline = time.monotonic() + seconds(120)
    while not (folder / "checkpoint.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    second = _wait(_child(folder, 100_000, None), seconds(60))  # a second writer while the first runs: refused
    import torch

    torch.set_num_threads(1)
    import vaecore
    from vaecore.training import run_folder

    failures: dict[str, int] = {}
    done = mismatched = 0
    steps_seen = set()
    while done < loads and time.monotonic() < deadline:
        try:
            model = vaecore.load(folder)
            assert model is not None
            json.loads((folder / "train.json").read_text())
            steps_seen.add(run_folder.weights_metadata(folder).get("step"))
            mismatched += not run_folder.consistent_pair(folder)
            run_folder.read_metrics(folder)
        except Exception as e:  # noqa: BLE001 - every failure is counted and reported
            key = f"{type(e).__name__}: {str(e)[:120]}"
            failures[key] = failures.get(key, 0) + 1
        done += 1
    alive = _wait(pid, 0) is None
    _kill(pid) if alive else None
    return {"loads": done, "failures": failures, "mismatched": mismatched, "steps_seen": len(steps_seen),
            "trainer_alive_to_the_end": alive, "second_writer_exit": second}


def main() -> None:
    work, kills, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    loads = int(sys.argv[4]) if len(sys.argv) > 4 else 500
    import PIL.Image  # noqa: F401 - what the children import on first use, imported once here
    import torch._dynamo  # noqa: F401 - the optimisers import it on their first step (seconds)

    import vaecore

    vaecore.load_dataset("digits", limit=96)  # reads and caches the data once, before the forks

    rng = random.Random(seed)
    t0 = time.monotonic()
    events = chain(work, kills, rng)
    pid = _child(work / "reference", STEPS, None)
    ref = _wait(pid, seconds(300))
    live = live_loads(work, loads)
    print(json.dumps({"events": events, "reference_exit": ref, "live": live, "seconds": time.monotonic() - t0}))


if __name__ == "__main__":
    main()

"""Kill -9 at every rename of every multi-file write: `python tests/kill_every_rename.py WORKDIR`.

The scenario writes each multi-file unit vaecore has: a run folder trained over a few epochs (model.safetensors +
config.json + README.md, checkpoint.safetensors, train.json, sample grids, best/ with best.json, metrics.jsonl), a
fitted sampler saved beside it (sampler-gmm.safetensors + sampler-gmm.json), an evaluation (per_image.safetensors
+ eval.json) and the model exported with save_pretrained (weights, config, card). Every atomic write goes through
`vaecore.utils.replace_file`, whose test hook (VAE_FAULT_RENAME=N or N:after) SIGKILLs the process just before or
just after its N-th rename.

1. One clean run of the scenario logs its R renames (the reference folder, kept for comparison).
2. For each N in 1..R, before and after the rename: a fresh folder, a child killed at that rename, a copy of what
   it left (snaps/NNN-when), then the scenario run again in the killed folder to recover.
Children are forked from this process after vaecore is imported, so each starts in milliseconds. Prints one JSON
line: the renames and, per kill, its exit code, the snapshot, and the recovery's exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EPOCHS, LIMIT, BATCH = 2, 96, 32  # 96 digits: 76 training images, 2 steps an epoch


def scenario(work: Path) -> None:
    """Train (or resume) the run, fit and save its GMM sampler, evaluate it, export the model."""
    import vaecore
    from vaecore import TrainConfig, Trainer, samplers
    from vaecore.evaluation import metrics
    from vaecore.evaluation.per_image import per_image_from
    from vaecore.evaluation.protocol import write_evaluation
    from vaecore.training import run_folder as rf

    run = work / "run"
    data = vaecore.load_dataset("digits", limit=LIMIT)
    if rf.holds_run(run):
        Trainer.resume(run).fit()
    else:
        config = TrainConfig(data="digits", limit=LIMIT, epochs=EPOCHS, batch_size=BATCH, log_every=1, val_limit=32,
                             checkpoint_every=1000, seed=0)
        vaecore.train("sigma-vae", data, run, config, arch="mlp", latent_dim=4)
    model = vaecore.load(run)
    samplers.load_or_fit(model, run, "gmm", data, components=3, n_train=64)
    result = metrics.evaluate(model, data, ["mse"], n_test=16, per_image=True)
    store = per_image_from(result, metrics.image_set(result))
    result.pop("per_image")
    write_evaluation(run, result, store)
    model.save_pretrained(work / "export")


def _child(work: Path, fault: str | None, log: Path | None = None) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            import torch

            torch.set_num_threads(1)
            os.environ.pop("VAE_FAULT_RENAME", None)
            os.environ.pop("VAE_FAULT_RENAME_LOG", None)
            if fault is not None:
                os.environ["VAE_FAULT_RENAME"] = fault
            if log is not None:
                os.environ["VAE_FAULT_RENAME"] = "0"  # counts and logs, never fires
                os.environ["VAE_FAULT_RENAME_LOG"] = str(log)
            scenario(work)
        except BaseException:  # noqa: BLE001 - the exit code and the traceback on stderr report it
            traceback.print_exc()
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main() -> None:
    work = Path(sys.argv[1])
    import PIL.Image  # noqa: F401 - what the children import on first use, imported once here
    import sklearn.mixture  # noqa: F401
    import torch._dynamo  # noqa: F401

    import vaecore

    vaecore.load_dataset("digits", limit=LIMIT)
    t0 = time.monotonic()
    log = work / "renames.log"
    reference = _child(work / "reference", None, log)
    renames = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    base = str(work / "reference") + "/"
    renames = [r[len(base):] if r.startswith(base) else r for r in renames]
    kills = []
    for n in range(1, len(renames) + 1):
        for when in ("before", "after"):
            folder = work / "kills" / f"{n:03d}-{when}"
            code = _child(folder, f"{n}:{when}")
            snap = work / "snaps" / folder.name
            shutil.copytree(folder, snap, symlinks=True)
            recovered = _child(folder, None)
            kills.append({"n": n, "when": when, "file": renames[n - 1], "exit": code, "snap": str(snap),
                          "folder": str(folder), "recovered": recovered})
    print(json.dumps({"reference_exit": reference, "renames": renames, "kills": kills,
                      "seconds": time.monotonic() - t0}))


if __name__ == "__main__":
    main()

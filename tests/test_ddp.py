"""DistributedDataParallel over torchrun: two CPU processes (gloo) match one process with the same
global batch; rank 0 alone writes the run; the world size is recorded and resume checks it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from budget import seconds
from safetensors.torch import load_file

from vaecore.training import distributed

ROOT = Path(__file__).resolve().parent.parent
COMMON = ["train", "--model", "ae", "--data", "digits", "--arch", "mlp", "--latent-dim", "4", "--batch-size", "64",
          "--max-steps", "24", "--log-every", "6", "--no-progress", "--device", "cpu"]  # gloo, also on a GPU box


def _run(args: list[str], nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "vaecore"] \
        if nproc > 1 else ["-m", "vaecore"]
    return subprocess.run([sys.executable, *launcher, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=seconds(600))


def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path) -> None:
    two = _run([*COMMON, "--out", str(tmp_path / "two")], nproc=2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _run([*COMMON, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("one", "two"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    assert json.loads((tmp_path / "two" / "train.json").read_text())["world_size"] == 2
    assert two.stdout.count("finished at step 24") == 1, "rank 0 alone reports"
    records = {run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
               for run in ("one", "two")}
    val = {run: torch.tensor([r["val_loss"] for r in recs if r["kind"] == "epoch"]) for run, recs in records.items()}
    torch.testing.assert_close(val["two"], val["one"], rtol=1e-5, atol=1e-4)  # reduced over both ranks' shards
    assert sum(r["kind"] == "step" for r in records["two"]) == 24 // 6, "one metrics stream, from rank 0"

    r = _run(["train", "--out", str(tmp_path / "two"), "--resume", "--max-steps", "30", "--no-progress"])
    assert r.returncode == 2 and "trained by 2 process(es)" in r.stderr, r.stderr[-2000:]


def test_more_processes_than_gpus_is_refused_for_cuda_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="needs a GPU each, and this machine has 1: launch `torchrun --nproc_per"):
        distributed.setup("cuda")

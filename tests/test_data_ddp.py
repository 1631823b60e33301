"""Data-parallel training from the on-disk cache: two torchrun processes (gloo, CPU) share one cache of an
RGB image folder, each reads only its shard of every batch (through DataLoader workers), and together they
train the same model as one process on the same global batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp: Path, settings: Path, out: str, nproc: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VAECORE_CACHE": str(tmp / "cache"),
           "PYTHONPATH": str(ROOT)}
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "vaecore"] \
        if nproc > 1 else ["-m", "vaecore"]
    args = ["train", "--settings", str(settings), "--out", str(tmp / out), "--no-progress", "--device", "cpu"]
    return subprocess.run([sys.executable, *launcher, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_two_ranks_share_one_cache_and_match_one_process(tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(48):
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    settings = tmp_path / "run.json"
    settings.write_text(json.dumps({
        "preset": "ae", "overrides": {"arch": "mlp", "latent_dim": 4},
        "train": {"data": "imagefolder", "data_dir": str(folder), "image_size": 8, "data_storage": "disk",
                  "data_workers": 1, "hflip": True, "batch_size": 8, "max_steps": 8, "log_every": 4,
                  "sample_grids": False}}))
    two = _run(tmp_path, settings, "two", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    caches = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(caches) == 1 and not any(p.name.endswith(".partial") for p in caches)  # one cache for both ranks
    one = _run(tmp_path, settings, "one", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("one", "two"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    recorded = json.loads((tmp_path / "two" / "train.json").read_text())
    assert recorded["world_size"] == 2 and recorded["image_size"] == 8 and recorded["data_storage"] == "disk"

"""The CUDA path, where a GPU is present (skipped otherwise: no test needs one). Run on a GPU machine
by `bash bench/gpu_session.sh tests`: training keeps the data on the GPU, bf16 and fp16 (with its
GradScaler) train to a lower loss, a GPU-trained model loads on the CPU and gives the same outputs,
and the evaluation's numbers agree between the two devices."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaecore import Dataset, TrainConfig, Trainer, build_preset
from vaecore.evaluation.metrics import evaluate
from vaecore.hub import load_folder
from vaecore.training.trainer import read_metrics

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def _fit(digits: Dataset, out: Path, **train: object) -> Trainer:
    model = build_preset("sigma-vae", seed=0, input_shape=digits.shape, dataset=digits.name)
    trainer = Trainer(model, digits, TrainConfig(max_steps=120, log_every=20, batch_size=64, lr=1e-3, seed=0,
                                                 val_limit=300, **train), out)
    trainer.fit()
    return trainer


@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_training_on_the_gpu_keeps_the_data_there_and_improves(amp: str, digits: Dataset, tmp_path: Path) -> None:
    trainer = _fit(digits, tmp_path / amp, device="cuda", amp=amp)
    assert trainer.batches.store.device.type == "cuda" and next(trainer.model.parameters()).device.type == "cuda"
    assert (trainer.runtime.scaler is not None) == (amp == "fp16")
    losses = [r["loss"] for r in read_metrics(tmp_path / amp) if r.get("kind") == "step"]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses


def test_a_gpu_model_loads_on_the_cpu_with_the_same_outputs(digits: Dataset, tmp_path: Path) -> None:
    _fit(digits, tmp_path / "run", device="cuda", amp="none")
    on_gpu, on_cpu = load_folder(tmp_path / "run", device="cuda"), load_folder(tmp_path / "run", device="cpu")
    x = digits.x_test[:64]
    with torch.no_grad():
        torch.testing.assert_close(on_gpu.reconstruct(x.cuda()).cpu(), on_cpu.reconstruct(x), rtol=1e-3, atol=1e-3)
    a = evaluate(on_gpu, digits, ["mse", "elbo"], n_test=200, seed=0)
    b = evaluate(on_cpu, digits, ["mse", "elbo"], n_test=200, seed=0)
    assert a["mse"] == pytest.approx(b["mse"], rel=1e-3)
    assert a["elbo"] == pytest.approx(b["elbo"], rel=0.05)  # each device draws its own z: Monte Carlo apart

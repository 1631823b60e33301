"""KL per latent dimension over training (the collapse heat map): each epoch record's `val_kl_dims` is the engine's
kl-per-dim on the validation images, a VampPrior run logs none (the engine's rule), and the heat map shows the
records' numbers with collapsed dimensions named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from explorer import figures
from vaecore import TrainConfig, load_dataset, read_metrics, train
from vaecore.evaluation.metrics import COLLAPSED_KL
from vaecore.evaluation.metrics.latent import kl_per_dimension
from vaecore.hub import load_folder


def test_epoch_records_hold_the_engines_kl_per_dimension(tmp_path: Path) -> None:
    digits = load_dataset("digits")
    config = TrainConfig(max_steps=30, log_every=10, val_limit=120, batch_size=64)
    train("sigma-vae", digits, tmp_path / "run", config, latent_dim=4)
    epochs = [r for r in read_metrics(tmp_path / "run") if r.get("kind") == "epoch"]
    assert epochs and all(len(r["val_kl_dims"]) == 4 for r in epochs)
    model = load_folder(tmp_path / "run").eval()
    want = kl_per_dimension(model, digits.take("val", torch.arange(120), torch.device("cpu"))).numpy()
    # float32 encoder outputs in batches of another size: the last float32 bits may differ
    np.testing.assert_allclose(epochs[-1]["val_kl_dims"], want, rtol=1e-5, atol=1e-9)
    matrix = figures.kl_dims_over_training(read_metrics(tmp_path / "run"))
    assert matrix is not None and matrix[1].shape == (4, len(epochs))
    np.testing.assert_array_equal(matrix[1][:, -1], epochs[-1]["val_kl_dims"])


def test_a_vampprior_run_logs_no_kl_per_dimension(tmp_path: Path) -> None:
    train("vae", load_dataset("digits"), tmp_path / "vamp", TrainConfig(max_steps=4, log_every=2, val_limit=40),
          latent_dim=3, prior="vamp")
    records = read_metrics(tmp_path / "vamp")
    assert any(r.get("kind") == "epoch" for r in records)
    assert not any("val_kl_dims" in r for r in records) and figures.kl_dims_over_training(records) is None


def test_heatmap_shows_the_records_and_names_collapsed_dimensions() -> None:
    records = [{"kind": "epoch", "epoch": e, "val_kl_dims": [2.0 * e, COLLAPSED_KL / 10]} for e in (1, 2, 3)]
    epochs, kl = figures.kl_dims_over_training(records + [{"kind": "step", "epoch": 0.5}])
    assert epochs == [1.0, 2.0, 3.0] and kl.tolist() == [[2.0, 4.0, 6.0], [COLLAPSED_KL / 10] * 3]
    fig = figures.kl_dims_heatmap(epochs, kl)
    assert list(fig.data[0].y) == ["z0", "z1 (collapsed)"]
    np.testing.assert_array_equal(np.asarray(fig.data[0].customdata), kl)

"""Trainer options users expect: optimizers and schedules by name with exact resume, keep-best,
early stopping, per-epoch sample grids, the CLI flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore import TrainConfig, Trainer, read_metrics
from vaecore.presets import model_config
from vaecore.training.trainer import BEST


def _trainer(out: Path, digits: vaecore.Dataset, callbacks=(), **cfg: object) -> Trainer:
    model = vaecore.build_model(model_config("sigma-vae", input_shape=digits.shape, arch="mlp",
                                             latent_dim=4).to_dict(), seed=0)
    values = {"data": "digits", "max_steps": 40, "epochs": 100, "batch_size": 64, "log_every": 5, "val_limit": 200,
              "checkpoint_every": 1000, **cfg}
    return Trainer(model, digits, TrainConfig(**values), out, callbacks)


@pytest.mark.parametrize(("optimizer", "scheduler", "extra"), [
    ("adam", "plateau", {"plateau_patience": 0, "plateau_factor": 0.5}),
    ("adamw", "cosine", {"weight_decay": 0.01, "epochs": 3}),
    ("sgd", "step", {"momentum": 0.9, "step_size": 1, "lr": 1e-2}),
    ("rmsprop", "none", {"momentum": 0.5}),
    ("adamax", "multistep", {"milestones": [1, 2], "step_gamma": 0.5}),
])
def test_resume_is_exact_for_each_optimizer_and_schedule(tmp_path: Path, digits: vaecore.Dataset, optimizer: str,
                                                         scheduler: str, extra: dict) -> None:
    cfg = {"optimizer": optimizer, "scheduler": scheduler, **extra}
    full = _trainer(tmp_path / "full", digits, **cfg)
    assert type(full.optimizer).__name__.lower() == optimizer
    full.fit()
    holder: dict[str, Trainer] = {}

    def stop_at_30(record: dict) -> None:  # after the first epoch end (18 steps): the schedule has stepped
        if record.get("kind") == "step" and record["step"] >= 30:
            holder["t"].stop()

    part = _trainer(tmp_path / "part", digits, [stop_at_30], **cfg)
    part.config.log_every = 1
    holder["t"] = part
    assert part.fit().step == 30
    resumed = Trainer.resume(tmp_path / "part")
    assert resumed.fit().status == "finished"
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume ({optimizer}, {scheduler})"
    assert full.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]
    if scheduler in ("step", "cosine"):
        assert resumed.optimizer.param_groups[0]["lr"] < resumed.config.lr, "the schedule must have moved the lr"
    if scheduler == "multistep":  # 40 steps of 18 per epoch: 2 epoch ends, both milestones passed
        assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(resumed.config.lr * 0.25, rel=1e-12)


def test_plateau_resumes_from_a_checkpoint_before_any_validation(tmp_path: Path, digits: vaecore.Dataset) -> None:
    """The step-0 checkpoint holds the plateau schedule's initial best (inf, stored as null in strict JSON)."""
    first = _trainer(tmp_path, digits, scheduler="plateau", max_steps=5)
    first.fit()
    resumed = Trainer.resume(tmp_path, max_steps=30)
    assert resumed.scheduler.best == float("inf")
    assert resumed.fit().status == "finished" and resumed.scheduler.best < float("inf")


def test_keep_best_early_stopping_and_epoch_grids(tmp_path: Path, digits: vaecore.Dataset) -> None:
    """Scripted validation losses: the best is epoch 2; patience 2 ends the run after epoch 4."""
    losses = iter([5.0, 3.0, 4.0, 6.0, 7.0, 8.0])
    weights: dict[int, dict[str, torch.Tensor]] = {}

    def keep(record: dict) -> None:
        if record.get("kind") == "epoch":
            weights[record["step"]] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    trainer = _trainer(tmp_path, digits, [keep], max_steps=None, epochs=6, early_stopping=2)
    trainer.evaluate = lambda: {"val_loss": next(losses), "val_mse": 1.0}  # type: ignore[method-assign]
    result = trainer.fit()
    spe = trainer.steps_per_epoch
    assert result.status == "finished" and result.epoch == 4 and "stopped early at epoch 4" in result.message
    best = json.loads((tmp_path / BEST / "best.json").read_text())
    assert best == {"val_loss": 3.0, "step": 2 * spe, "epoch": 2}
    loaded = vaecore.load(tmp_path / BEST)
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, weights[2 * spe][name]), name
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == [f"{kind}_{e:04d}.png" for kind in ("epoch", "recon") for e in range(1, 5)]
    assert (tmp_path / "samples.png").read_bytes() == (tmp_path / "samples" / "epoch_0004.png").read_bytes()
    epochs = [r for r in read_metrics(tmp_path) if r["kind"] == "epoch"]
    assert [r["val_loss"] for r in epochs] == [5.0, 3.0, 4.0, 6.0]


def test_validation_is_one_pass_with_all_its_values(tmp_path: Path, digits: vaecore.Dataset) -> None:
    trainer = _trainer(tmp_path, digits)
    calls = {"n": 0}
    encoder = trainer.model.encoder
    hook = encoder.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    val = trainer.evaluate()
    hook.remove()
    assert set(val) == {"val_loss", "val_elbo", "val_mse", "val_kl_dims"} and val["val_mse"] > 0
    assert len(val["val_kl_dims"]) == trainer.model.capabilities.latent_size and min(val["val_kl_dims"]) >= 0
    assert calls["n"] == 1, "200 validation images (one chunk) must take one encoder pass"


def test_unknown_names_fail_with_the_choices() -> None:
    with pytest.raises(ValueError, match="'optimizer' must be one of"):
        TrainConfig(optimizer="adagrad")
    with pytest.raises(ValueError, match="'scheduler' must be one of"):
        TrainConfig(scheduler="linear")
    with pytest.raises(ValueError, match="'log_to' has unknown value 'neptune'"):
        TrainConfig(log_to=["neptune"])


def test_cli_flags_reach_the_train_config() -> None:
    from vaecore.cli import build_parser
    from vaecore.cli_flags import given

    args = build_parser().parse_args(["train", "--model", "vae", "--out", "x", "--optimizer", "sgd", "--momentum",
                                      "0.9", "--scheduler", "step", "--step-size", "3", "--early-stopping", "4",
                                      "--log-to", "tensorboard", "--no-keep-best", "--channels-last"])
    opts = given(args, TrainConfig)
    assert opts == {"optimizer": "sgd", "momentum": 0.9, "scheduler": "step", "step_size": 3, "early_stopping": 4,
                    "log_to": ["tensorboard"], "keep_best": False, "channels_last": True}
    TrainConfig(**opts)


def test_bf16_autocast_on_the_cpu_is_opt_in_and_trains(tmp_path: Path, digits: vaecore.Dataset) -> None:
    assert _trainer(tmp_path / "default", digits).runtime.amp_dtype is None  # "auto" keeps the CPU exact
    seen: list[torch.dtype] = []
    trainer = _trainer(tmp_path / "bf16", digits, amp="bf16", max_steps=60, device="cpu")
    assert trainer.runtime.amp_dtype == torch.bfloat16
    hook = trainer.model.decoder.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    assert trainer.fit().status == "finished"
    hook.remove()
    assert torch.bfloat16 in seen, "the forward pass ran under bf16 autocast"
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters()), "weights stay fp32"
    losses = [r["loss"] for r in read_metrics(tmp_path / "bf16") if r.get("kind") == "step"]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3

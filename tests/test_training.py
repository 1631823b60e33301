"""Short real trainings: the σ-VAE calibrates and beats σ = 1; resume is exact; NaN stops cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from budget import seconds

import vaecore
from vaecore import TrainConfig, Trainer, TrainingDiverged, cli, read_metrics
from vaecore.presets import model_config

ROOT = Path(__file__).resolve().parent.parent


def _epochs(run: Path) -> list[dict]:
    return [r for r in read_metrics(run) if r["kind"] == "epoch"]


def test_sigma_vae_learns_and_calibrates(sigma_vae_dir: Path) -> None:
    epochs = _epochs(sigma_vae_dir)
    assert len(epochs) >= 3
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"] - 50, "validation loss must fall"
    steps = [r for r in read_metrics(sigma_vae_dir) if r["kind"] == "step"]
    assert steps[-1]["log_sigma"] < -1.5, "ln σ must move well below 0 (σ calibrates to the RMS error)"
    assert all(k in steps[-1] for k in ("loss", "recon", "kl", "lr", "images_per_s"))
    assert (sigma_vae_dir / "samples.png").stat().st_size > 1000


def test_unit_variance_gaussian_reconstructs_worse(tmp_path: Path, mnist: vaecore.Dataset,
                                                   sigma_vae_dir: Path) -> None:
    """Same steps, σ = 1: the KL dominates and reconstructions blur (the papers' collapse effect)."""
    vaecore.train("gaussian-vae", mnist, tmp_path, TrainConfig(max_steps=400, log_every=25, val_limit=1000))
    sigma_mse = _epochs(sigma_vae_dir)[-1]["val_mse"]
    gauss_mse = _epochs(tmp_path)[-1]["val_mse"]
    assert gauss_mse > 1.5 * sigma_mse, (gauss_mse, sigma_mse)


def _tiny_run(tmp_path: Path, digits: vaecore.Dataset, steps: int, callbacks=()) -> Trainer:
    model = vaecore.build_model(model_config("sigma-vae", input_shape=digits.shape, arch="mlp",
                                             latent_dim=4).to_dict(), seed=0)
    cfg = TrainConfig(data="digits", max_steps=steps, epochs=100, batch_size=64, log_every=5, val_limit=200,
                      checkpoint_every=1000)
    return Trainer(model, digits, cfg, tmp_path, callbacks)


def test_resume_continues_exactly(tmp_path: Path, digits: vaecore.Dataset) -> None:
    full = _tiny_run(tmp_path / "full", digits, 40)
    full.fit()

    holder: dict[str, Trainer] = {}

    def stop_at_23(record: dict) -> None:
        if record.get("kind") == "step" and record["step"] >= 23:
            holder["t"].stop()

    part = _tiny_run(tmp_path / "part", digits, 40, [stop_at_23])
    part.config.log_every = 1
    holder["t"] = part
    result = part.fit()
    assert result.status == "stopped" and result.step == 23
    saved = vaecore.load(tmp_path / "part").state_dict()
    for name, value in part.model.state_dict().items():
        assert torch.equal(saved[name], value.cpu()), f"{name}: the stopped run's folder holds other weights"
    resumed = Trainer.resume(tmp_path / "part")
    assert resumed.step == 23
    assert resumed.fit().status == "finished"
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"
    events = [r["event"] for r in read_metrics(tmp_path / "part") if r["kind"] == "event"]
    assert events == ["started", "stopped", "resumed", "finished"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, digits: vaecore.Dataset) -> None:
    trainer = _tiny_run(tmp_path, digits, 60)
    real_loss = trainer.model.loss
    calls = {"n": 0}

    def poisoned(x: torch.Tensor, *args: object, **kw: object) -> vaecore.LossOutput:
        calls["n"] += trainer.model.training  # validation calls do not count
        out = real_loss(x, *args, **kw)
        if calls["n"] == 30 and trainer.model.training:
            out.loss = out.loss * float("nan")
        return out

    trainer.model.loss = poisoned  # type: ignore[method-assign]
    with pytest.raises(TrainingDiverged, match="loss became nan at step 30"):
        trainer.fit()
    model = vaecore.load(tmp_path)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    last = read_metrics(tmp_path)[-1]
    assert last["event"] == "diverged" and "last good checkpoint" in last["message"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vaecore", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=seconds(300))


def test_cli_train_resume_eval_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    common = ["--data", "digits", "--arch", "mlp", "--latent-dim", "4", "--no-progress"]
    r = _cli("train", "--model", "sigma-vae", "--max-steps", "10", "--out", str(run), *common)
    assert r.returncode == 0, r.stderr
    r = _cli("train", "--out", str(run), "--resume", "--max-steps", "20", "--no-progress")
    assert r.returncode == 0 and "finished at step 20" in r.stdout, r.stderr
    r = _cli("eval", str(run), "--json", "--n-test", "200")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert set(result) >= {"elbo", "mse"} and result["mse"] > 0
    r = _cli("eval", str(run), "--json", "--n-test", "50", "--metrics", "elbo,fid")
    assert r.returncode == 0 and "fd" in json.loads(r.stdout), r.stderr  # "fid" is an alias of our FD
    r = _cli("sample", str(run), "--n", "16", "--out", str(tmp_path / "s.png"))
    assert r.returncode == 0 and (tmp_path / "s.png").exists(), r.stderr
    # the error paths in-process (a subprocess costs seconds of imports; tests/test_cli_errors.py has the rest)
    for argv, message in ((["train", "--model", "no-such", "--out", str(tmp_path / "x")], "unknown model 'no-such'"),
                          (["train", "--model", "sigma-vae", "--set", "latent_dims=3", "--out", str(tmp_path / "y"),
                            *common], "latent_dims")):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err

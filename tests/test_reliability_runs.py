"""Crash-safe run folders: kill -9 anywhere, live readers, the writer lock, temp files, modes, strict-JSON metrics,
the divergence guard, and runs made from Python that record (and resume on) the data they really used."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds
from safetensors import safe_open
from safetensors.torch import load_file

import vaecore
from vaecore import TrainConfig, Trainer, TrainingDiverged
from vaecore.evaluation.per_image import load_per_image
from vaecore.files import PER_IMAGE
from vaecore.training import run_folder as rf
from vaecore.utils import FILE_MODE, atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent
HARNESS = Path(__file__).resolve().parent / "reliability_harness.py"
KILLS = int(os.environ.get("VAE_KILLS", "24"))
LOADS = int(os.environ.get("VAE_LIVE_LOADS", "500"))
STEPS = int(os.environ.get("VAE_KILL_STEPS", "120"))


def _strict(line: str) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"non-JSON token {token}")

    return json.loads(line, parse_constant=refuse)


def _ckpt_step(folder: Path) -> int:
    with safe_open(str(folder / rf.CHECKPOINT), "pt") as f:
        return json.loads(f.metadata()["state"])["step"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("kills")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(HARNESS), str(work), str(KILLS), "0", str(LOADS)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=seconds(600))
    assert r.returncode == 0, r.stderr[-3000:]
    return work, json.loads(r.stdout.strip().splitlines()[-1])


def test_kill_9_at_any_moment_leaves_a_loadable_run_that_resumes_exactly(harness: tuple[Path, dict]) -> None:
    work, report = harness
    events = report["events"]
    kills = [e for e in events if e["i"] != "final"]
    assert len(kills) >= 20
    faults = [e for e in kills if e["fault"] != "random"]
    assert {e["fault"][0] for e in faults} >= {"checkpoint.safetensors", "model.safetensors", "config.json",
                                               "train.json", "samples.png", "README.md", "metrics.jsonl"}
    assert all(e["exit"] == -9 for e in faults), "every injected kill fired inside its write"
    assert all(e["exit"] == -9 for e in kills), "the run must not finish before the last kill"
    assert events[-1]["exit"] == 0 and report["reference_exit"] == 0
    seen_run = False
    for e in kills:
        snap = Path(e["snap"])
        if not rf.holds_run(snap):
            assert not seen_run, f"kill {e['i']} ({e['fault']}): a run folder lost its checkpoint"
            continue
        seen_run = True
        model = vaecore.load(snap)
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
        assert rf.consistent_pair(snap), f"kill {e['i']}: config.json and model.safetensors do not match"
        assert int(rf.weights_metadata(snap)["step"]) >= _ckpt_step(snap)
        Trainer.resume(snap)  # the folder is resumable: config, train.json, checkpoint and data all read
        lines = (snap / rf.METRICS).read_text().splitlines()
        for line in lines[:-1]:
            _strict(line)
    assert seen_run
    run, ref = work / "run", work / "reference"
    final, reference = load_file(str(run / rf.WEIGHTS)), load_file(str(ref / rf.WEIGHTS))
    assert final.keys() == reference.keys()
    for k in final:
        assert torch.equal(final[k], reference[k]), f"{k} differs from the uninterrupted run"
    records = [_strict(line) for line in (run / rf.METRICS).read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    ref_steps = [r for r in rf.read_metrics(ref) if r["kind"] == "step"]
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1)), "every step logged exactly once after resumes"
    assert [r["loss"] for r in steps] == [r["loss"] for r in ref_steps]
    assert records[-1]["event"] == "finished"
    assert rf.temp_files(run) == [] and not (run / rf.LOCK).exists()
    for p in run.iterdir():
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == FILE_MODE, p.name


def test_readers_of_a_live_run_never_see_a_half_written_folder(harness: tuple[Path, dict]) -> None:
    live = harness[1]["live"]
    assert live["loads"] >= LOADS and live["trainer_alive_to_the_end"]
    assert live["failures"] == {}
    assert live["mismatched"] == 0
    assert live["steps_seen"] > 5, "the loads overlapped many checkpoints"
    assert live["second_writer_exit"] == 4, "a second process writing the live run is refused (RunLockedError)"


def _tiny(digits: vaecore.Dataset, out: Path, steps: int = 6, **kw: object) -> Trainer:
    model = vaecore.build_model(vaecore.model_config("sigma-vae", input_shape=digits.shape, arch="mlp",
                                                     latent_dim=4).to_dict(), seed=0)
    cfg = TrainConfig(data="digits", max_steps=steps, epochs=100, batch_size=64, log_every=1, val_limit=100, **kw)
    return Trainer(model, digits, cfg, out)


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path: Path, digits: vaecore.Dataset) -> None:
    first = _tiny(digits, tmp_path, steps=1000)
    inside, release = threading.Event(), threading.Event()

    def hold(record: dict) -> None:
        if record.get("kind") == "step":
            inside.set()
            release.wait(30)
            first.stop()

    first.add_callback(hold)
    thread = threading.Thread(target=first.fit)
    thread.start()
    try:
        assert inside.wait(60)
        owner = rf.lock_owner(tmp_path)
        assert owner and owner["pid"] == os.getpid()
        with pytest.raises(rf.RunLockedError, match=f"being written by process {os.getpid()}"):
            _tiny(digits, tmp_path).fit()
        with pytest.raises(rf.RunLockedError):
            Trainer.resume(tmp_path).fit()
    finally:
        release.set()
        thread.join(60)
    assert rf.lock_owner(tmp_path) is None and not (tmp_path / rf.LOCK).exists()
    with pytest.raises(rf.RunExistsError, match="already holds a run"):
        _tiny(digits, tmp_path).fit()  # the Python API no longer overwrites a run silently
    assert Trainer.resume(tmp_path, max_steps=8).fit().status == "finished"


def test_a_stale_lock_is_taken_over_and_killed_writes_are_cleaned(tmp_path: Path, digits: vaecore.Dataset) -> None:
    _tiny(digits, tmp_path, steps=3).fit()
    (tmp_path / rf.LOCK).write_text(json.dumps({"pid": 999_999_999, "host": "gone", "time": 0}))
    debris = [tmp_path / ".checkpoint.safetensors.x1.tmp", tmp_path / ".README.md.x2.tmp"]
    for p in debris:
        p.write_bytes(b"half")
    (tmp_path / "best").mkdir(exist_ok=True)
    debris.append(tmp_path / "best" / ".model.safetensors.ab12cd34.tmp")
    debris[-1].write_bytes(b"half")
    other = tmp_path / ".unrelated.tmp"
    other.write_bytes(b"keep")
    assert rf.lock_owner(tmp_path) is None, "a lock file no live process holds is stale"
    assert Trainer.resume(tmp_path, max_steps=5).fit().status == "finished"
    assert not any(p.exists() for p in debris) and other.exists()
    assert rf.temp_files(tmp_path) == []
    atomic_write_bytes(tmp_path / "x.bin", b"1")
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == FILE_MODE == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_metrics_are_strict_json_with_nan_as_null(tmp_path: Path) -> None:
    rf.append_metric(tmp_path, {"kind": "epoch", "step": 1, "val_loss": float("nan"), "x": [float("inf"), 1.0]})
    with open(tmp_path / rf.METRICS, "ab") as f:
        f.write(b'{"kind": "epoch", "step": 2, "val_loss": NaN}\n{"kind": "st')  # an old run's line, a torn line
    rf.append_metric(tmp_path, {"kind": "step", "step": 3, "loss": 1.5})
    lines = (tmp_path / rf.METRICS).read_text().splitlines()
    assert _strict(lines[0]) == {"kind": "epoch", "step": 1, "val_loss": None, "x": [None, 1.0]}
    assert _strict(lines[-1])["step"] == 3, "the next append ends the torn line first"
    records = rf.read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3] and records[1]["val_loss"] is None


def test_the_guard_stops_on_explosions_unless_told_not_to() -> None:
    from vaecore.training.guard import DivergenceGuard

    linear = torch.nn.Linear(2, 2)
    guard = DivergenceGuard(100.0)
    for step, loss in enumerate([500.0, 300.0, -200.0, -150.0], 1):
        guard.check_step(loss, step, 0)
    with pytest.raises(TrainingDiverged, match="exploded"):
        guard.check_step(1e35, 5, 4)
    with pytest.raises(TrainingDiverged, match="became nan"):
        guard.check_step(float("nan"), 5, 4)
    lax = DivergenceGuard(None)
    lax.check_step(1.0, 1, 0)
    lax.check_step(1e35, 2, 1)
    lax.check_checkpoint(linear, 1.0, 2, 1)
    lax.check_checkpoint(linear, 1e35, 3, 2)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        with torch.no_grad():
            linear.weight[0, 0] = float("inf")
        lax.check_checkpoint(linear, 1.0, 4, 3)
    assert TrainConfig(divergence_factor=None).divergence_factor is None
    with pytest.raises(ValueError, match="divergence_factor"):
        TrainConfig(divergence_factor=0.5)


def _cli(*args: str) -> tuple[int, str]:
    from vaecore import cli

    try:
        cli.main(list(args))
    except SystemExit as e:
        return int(e.code or 0), ""
    return 0, ""


def test_nan_and_exploding_losses_stop_with_a_finite_last_good_checkpoint(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    for lr, out in (("1e4", tmp_path / "nan"), ("1e3", tmp_path / "explode")):
        code, _ = _cli("train", "--model", "sigma-vae", "--data", "digits", "--limit", "64", "--batch-size", "64",
                       "--lr", lr, "--epochs", "50", "--out", str(out), "--no-progress")
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and err[-1].startswith("error:") and "last good checkpoint" in err[-1], (lr, err)
        assert "Traceback" not in "\n".join(err)
        model = vaecore.load(out)
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
        x = vaecore.load_dataset("digits").x_val[:64]
        mu, _ = model.encode(x)
        assert mu.abs().max() < 1e6, "the kept checkpoint's latents are sane"
        records = [_strict(line) for line in (out / rf.METRICS).read_text().splitlines()]
        assert records[-1]["event"] == "diverged"
        good = _ckpt_step(out)
        vals = [r["val_loss"] for r in records if r["kind"] == "epoch" and r["step"] <= good]
        assert all(v is not None for v in vals), "no checkpoint with a NaN validation loss is declared good"


def test_python_api_runs_record_their_dataset_and_resume(tmp_path: Path) -> None:
    data = vaecore.load_dataset("digits", limit=100, seed=3)
    out = tmp_path / "api"
    vaecore.train("sigma-vae", data, out, TrainConfig(max_steps=4, batch_size=50, seed=1), arch="mlp", latent_dim=4)
    train = json.loads((out / rf.TRAIN).read_text())
    assert (train["data"], train["limit"], train["data_seed"], train["seed"]) == ("digits", 100, 3, 1)
    resumed = Trainer.resume(out, max_steps=6)
    assert torch.equal(resumed.dataset.x_train, data.x_train)
    assert resumed.fit().status == "finished"
    hand = vaecore.Dataset("mine", data.x_train, None, data.x_val, None, data.x_test, None)
    vaecore.train("sigma-vae", hand, tmp_path / "hand", TrainConfig(max_steps=2, batch_size=50), arch="mlp",
                  latent_dim=4)
    with pytest.raises(rf.RunFolderError, match=r"dataset=\.\.\."):
        Trainer.resume(tmp_path / "hand")
    assert Trainer.resume(tmp_path / "hand", dataset=hand, max_steps=3).fit().status == "finished"


def test_relative_data_paths_are_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    import numpy as np

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    x = (vaecore.load_dataset("digits").x_train[:200, 0].numpy() * 255).astype(np.uint8)
    np.save(work / "mine.npy", x)
    monkeypatch.chdir(work)
    code, _ = _cli("train", "--model", "sigma-vae", "--data", "mine.npy", "--arch", "mlp", "--latent-dim", "4",
                   "--max-steps", "3", "--out", "run", "--no-progress")
    assert code == 0, capsys.readouterr().err
    assert json.loads((work / "run" / rf.TRAIN).read_text())["data"] == str(work / "mine.npy")
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert _cli("train", "--out", str(work / "run"), "--resume", "--max-steps", "5", "--no-progress")[0] == 0
    assert _cli("eval", str(work / "run"), "--json", "--n-test", "10")[0] == 0
    assert "elbo" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# kill -9 at every rename of every multi-file write -----------------------------------------------------------------
EVERY_RENAME = Path(__file__).resolve().parent / "kill_every_rename.py"


@pytest.fixture(scope="module")
def every_rename(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("every-rename")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(EVERY_RENAME), str(work)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    return work, json.loads(r.stdout.strip().splitlines()[-1])


def _temp_debris(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _pair_ok(folder: Path) -> None:
    """A model folder with both files loads, and its weights name the config beside them."""
    if (folder / rf.CONFIG).is_file() and (folder / rf.WEIGHTS).is_file():
        vaecore.load(folder)
        assert rf.consistent_pair(folder), f"{folder}: config.json and model.safetensors do not match"


def test_a_kill_at_every_rename_leaves_every_folder_consistent(every_rename: tuple[Path, dict]) -> None:
    from vaecore import samplers

    work, report = every_rename
    renames, kills = report["renames"], report["kills"]
    assert report["reference_exit"] == 0
    units = {"run/model.safetensors", "run/config.json", "run/README.md", "run/checkpoint.safetensors",
             "run/train.json", "run/best/model.safetensors", "run/best/best.json", "run/sampler-gmm.safetensors",
             "run/sampler-gmm.json", "run/per_image.safetensors", "run/eval.json", "export/model.safetensors",
             "export/config.json", "export/README.md"}
    assert units <= set(renames), f"the scenario renames {sorted(set(renames))}"
    assert len(kills) == 2 * len(renames) and all(k["exit"] == -9 for k in kills), "every injected kill fired"
    reference = work / "reference"
    ref_best = rf.read_best(reference / "run")
    assert ref_best is not None
    for k in kills:
        where = f"kill {k['when']} rename {k['n']} ({k['file']})"
        snap, run = Path(k["snap"]), Path(k["snap"]) / "run"
        # what the kill left: every pair that a reader would use agrees, or is refused
        _pair_ok(run)
        _pair_ok(run / "best")
        _pair_ok(snap / "export")
        if rf.holds_run(run):
            assert int(rf.weights_metadata(run)["step"]) >= _ckpt_step(run), where
            Trainer.resume(run)
        best = rf.read_best(run)
        if best is not None:
            assert str(best["step"]) == rf.weights_metadata(run / "best")["step"], where
        if (run / "sampler-gmm.json").is_file() and (run / "sampler-gmm.safetensors").is_file():
            try:
                assert samplers.load_sampler(run, "gmm").weights.shape == (3,), where
            except samplers.SamplerLoadError as e:
                assert "interrupted" in str(e), (where, str(e))
        if (run / rf.EVAL).is_file() and (run / PER_IMAGE).is_file():  # the evaluation's pair, or refused
            try:
                values = load_per_image(run)
                assert values.estimate("mse").value == pytest.approx(json.loads((run / rf.EVAL).read_text())["mse"],
                                                                    rel=1e-5), where
            except ValueError as e:
                assert "interrupted" in str(e), (where, str(e))
        # the scenario run again in the killed folder finishes, cleans every temp file, and ends where the
        # uninterrupted run ended
        folder = Path(k["folder"])
        assert k["recovered"] == 0, where
        assert _temp_debris(folder) == [], (where, _temp_debris(folder))
        assert rf.read_best(folder / "run") == ref_best, where
        for name in ("run", "run/best", "export"):
            _pair_ok(folder / name)
            got, want = load_file(str(folder / name / rf.WEIGHTS)), load_file(str(reference / name / rf.WEIGHTS))
            assert all(torch.equal(got[key], want[key]) for key in want), (where, name)
        assert samplers.load_sampler(folder / "run", "gmm").weights.shape == (3,), where
        got, want = load_per_image(folder / "run"), load_per_image(reference / "run")
        assert got.images == want.images and np.array_equal(got.values["mse"], want.values["mse"]), where

"""Multi-file writes are atomic as a unit, side files never block a checkpoint, model folders are read-only-safe,
and full or read-only disks give a message naming the file. (The kill -9 tests that inject a kill at every
rename of every multi-file write are in tests/test_reliability_runs.py.)"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import vaecore
from vaecore import TrainConfig, Trainer
from vaecore import samplers as smp
from vaecore.training import run_folder as rf
from vaecore.utils import WriteError, atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, digits: vaecore.Dataset) -> Path:
    out = tmp_path_factory.mktemp("atomic") / "run"
    vaecore.train("sigma-vae", digits, out, TrainConfig(data="digits", max_steps=3, batch_size=64, val_limit=64,
                                                        sample_grids=False), arch="mlp", latent_dim=4)
    return out


@pytest.fixture()
def model_dir(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    shutil.copytree(run, dest)
    return dest


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, module: object, name: str, calls: int = 0) -> None:
    """Make `module.name` raise (as if the process were killed there) after `calls` successful calls."""
    real = getattr(module, name)
    seen = {"n": 0}

    def fake(*args: object, **kwargs: object) -> object:
        seen["n"] += 1
        if seen["n"] > calls:
            raise KeyboardInterrupt(f"simulated kill in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, fake)


# samplers: tensors + json --------------------------------------------------------------------------------------------
def test_a_sampler_save_interrupted_between_its_files_is_refused_and_refitted(
        model_dir: Path, digits: vaecore.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaecore.samplers import base

    model = vaecore.load(model_dir)
    ten = smp.load_or_fit(model, model_dir, "gmm", digits, components=10)
    meta = json.loads((model_dir / "sampler-gmm.json").read_text())
    assert meta["settings"]["components"] == 10 and len(meta["tensors_sha256"]) == 64
    five = smp.fit_sampler(model, digits, "gmm", components=5)
    with monkeypatch.context() as m:
        _interrupt_after(m, base, "atomic_write_json")  # the tensors are renamed in, the manifest is not
        with pytest.raises(KeyboardInterrupt):
            five.save(model_dir)
    assert json.loads((model_dir / "sampler-gmm.json").read_text())["settings"]["components"] == 10
    with pytest.raises(smp.SamplerLoadError, match="describes other tensors.*interrupted"):
        smp.load_sampler(model_dir, "gmm")
    with pytest.warns(UserWarning, match="refitting the 'gmm' sampler"):
        again = smp.load_or_fit(model, model_dir, "gmm", digits, components=10)
    assert again.weights.shape == (10,) and torch.equal(again.means, ten.means)
    assert smp.load_sampler(model_dir, "gmm").weights.shape == (10,)


def test_a_sampler_pair_from_before_manifests_is_checked_by_shape(model_dir: Path, digits: vaecore.Dataset) -> None:
    model = vaecore.load(model_dir)
    smp.fit_sampler(model, digits, "gmm", components=5).save(model_dir)
    meta_path = model_dir / "sampler-gmm.json"
    meta = json.loads(meta_path.read_text())
    del meta["tensors_sha256"]
    meta["settings"]["components"] = 10  # an old file saying 10 components beside 5-component tensors
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(smp.SamplerLoadError, match="5 components, the settings say 10"):
        smp.load_sampler(model_dir, "gmm")


def test_a_saved_sampler_clears_the_temporary_files_of_killed_saves(model_dir: Path, digits: vaecore.Dataset) -> None:
    debris = [model_dir / ".sampler-gmm.safetensors.ab12cd34.tmp", model_dir / ".sampler-gmm.json.x9y8z7w6.tmp"]
    for p in debris:
        p.write_bytes(b"half")
    other = model_dir / ".sampler-maf.json.k2k2k2k2.tmp"
    other.write_bytes(b"another sampler's")
    smp.fit_sampler(vaecore.load(model_dir), digits, "gmm", components=2).save(model_dir)
    assert not any(p.exists() for p in debris) and other.exists()


# best/ and best.json ----------------------------------------------------------------------------------------------
def test_best_json_names_the_weights_beside_it_and_a_resume_mends_a_torn_best(
        tmp_path: Path, digits: vaecore.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    config = TrainConfig(data="digits", epochs=2, batch_size=500, val_limit=64, sample_grids=False)
    vaecore.train("sigma-vae", digits, out, config, arch="mlp", latent_dim=4)
    best = rf.read_best(out)
    assert best is not None and str(best["step"]) == rf.weights_metadata(out / rf.BEST)["step"]
    model = vaecore.load(out)
    newer = {**best, "step": int(rf.weights_metadata(out)["step"]) + 7, "epoch": 9, "val_loss": -1.0}
    with monkeypatch.context() as m:  # a kill after best/'s weights, before best.json
        _interrupt_after(m, rf, "atomic_write_json")
        rf.save_model(out, model, step=newer["step"])
        with pytest.raises(KeyboardInterrupt):
            rf.write_best(out, model, newer)
    assert json.loads((out / rf.BEST / rf.BEST_RECORD).read_text())["step"] == best["step"]
    assert rf.read_best(out) is None, "best.json naming other weights is ignored"
    rf.repair_best(out, model, newer)  # what a resume does, holding the lock
    assert rf.read_best(out) == {k: v for k, v in newer.items() if k != "bad_epochs"}
    (out / rf.BEST / rf.BEST_RECORD).write_text(json.dumps({**best, "step": 1}))
    rf.repair_best(out, model, {**best, "step": 2})  # neither the weights' step nor best/'s: best.json goes
    assert rf.read_best(out) is None and not (out / rf.BEST / rf.BEST_RECORD).exists()


# read-only model folders ----------------------------------------------------------------------------------------------
READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 97; shift; exec "$@"'


def _cli_on_read_only(folder: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess | None:
    """`python -m vaecore ARGS` with `folder` made read-only by a read-only bind mount in a private mount namespace
    (`unshare -m`, root only), which vanishes with the process; None where such a mount cannot be made."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return None
    r = subprocess.run(["unshare", "-m", "sh", "-c", READ_ONLY, "sh", str(folder), sys.executable, "-m", "vaecore",
                        *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
                       text=True, timeout=600)
    return None if r.returncode == 97 else r


def _simulated_read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file creation under `folder` fails with EROFS, as on a read-only file system (in this process)."""
    real_open = os.open

    def guarded(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if str(path).startswith(str(folder)) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


def test_eval_and_sample_with_a_fitted_sampler_on_a_read_only_model_folder(
        model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from vaecore import cli

    cache = tmp_path / "cache"
    monkeypatch.setenv("VAE_CACHE_DIR", str(cache))
    before = sorted(p.name for p in model_dir.iterdir())
    commands = [["sample", str(model_dir), "--sampler", "gmm", "--components", "3", "--n", "4",
                 "--out", str(tmp_path / "s.png")],
                ["eval", str(model_dir), "--sampler", "gmm", "--components", "3", "--metrics", "mse",
                 "--n-test", "20", "--json"]]
    outputs = [_cli_on_read_only(model_dir, args, {"VAE_CACHE_DIR": str(cache)}) for args in commands]
    if None in outputs:  # no mount namespace here: the same commands in-process, the folder read-only simulated
        _simulated_read_only(model_dir, monkeypatch)
        for args in commands:
            cli.main(args)
        last = capsys.readouterr().out
    else:
        assert all(r.returncode == 0 for r in outputs), [r.stderr[-2000:] for r in outputs]
        last = outputs[-1].stdout
    assert sorted(p.name for p in model_dir.iterdir()) == before, "the model folder was not written"
    cached = smp.sampler_cache(model_dir)
    assert cached.is_relative_to(cache) and (cached / "sampler-gmm.json").is_file()
    assert "mse" in json.loads(last.strip().splitlines()[-1])


def test_the_app_fits_samplers_of_bundled_models_into_its_cache_only(
        model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import caches

    bundled = tmp_path / "checkpoints"
    shutil.copytree(model_dir, bundled / "tiny")
    monkeypatch.setenv("VAE_CHECKPOINTS", str(bundled))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "app-cache"))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "app-runs"))
    before = sorted(p.name for p in (bundled / "tiny").iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Streamlit's "no runtime" warnings
        sampler = caches.fitted_sampler("tiny", "gmm", n_train=200)
        assert caches.sampler_saved("tiny", "gmm")
    assert sampler.fitted and sorted(p.name for p in (bundled / "tiny").iterdir()) == before
    assert (tmp_path / "app-cache" / "samplers" / "tiny" / "sampler-gmm.json").is_file()


def test_a_sampler_that_cannot_be_saved_is_still_used(model_dir: Path, digits: vaecore.Dataset, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The saved copy only spares a refit: a read-only cache (or a full disk) is a warning, never a lost fit."""
    model = vaecore.load(model_dir)
    cache = tmp_path / "cache"
    _simulated_read_only(cache, monkeypatch)
    with pytest.warns(UserWarning, match=f"used without being saved \\(could not write {cache}/.*read-only"):
        sampler = smp.load_or_fit(model, model_dir, "gmm", digits, components=2, n_train=200, save_to=cache)
    assert sampler.fitted and not list(cache.rglob("sampler-*"))
    _simulated_read_only(model_dir, monkeypatch)  # the model folder too: its cache under VAE_CACHE_DIR, read-only
    monkeypatch.setenv("VAE_CACHE_DIR", str(cache))
    with pytest.warns(UserWarning, match="used without being saved"):
        assert smp.load_or_fit(model, model_dir, "gmm", digits, components=2, n_train=200).fitted


# full and read-only disks: messages that name the file ---------------------------------------------------------------
def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    path.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match=f"could not write {path}: the disk is full: free some space") as err:
        atomic_write_bytes(path, b"new")
    assert err.value.errno == errno.ENOSPC
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_the_cli_names_the_file_a_full_disk_stopped(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    from vaecore import cli

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SystemExit) as code:
        cli.main(["sample", str(model_dir), "--n", "4", "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code.value.code == 1 and len(err) == 1, err
    assert err[0] == f"error: could not write {tmp_path / 's.png'}: the disk is full: free some space (or write to " \
                     "another disk) and run again (the previous file, if any, is intact)"


FULL_DISK = ('mount -t tmpfs -o size=256k tmpfs "$1" || exit 97; disk="$1"; shift; "$@"; code=$?; '
             'echo "left:"; ls -A "$disk/run"; exit $code')


def test_training_onto_a_full_disk_says_which_file(tmp_path: Path) -> None:
    """A 256 KiB tmpfs in a private mount namespace (root only; it vanishes with the process)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["unshare", "-m", "sh", "-c", FULL_DISK, "sh", str(disk), sys.executable, "-m", "vaecore",
                        "train", "--model", "sigma-vae", "--data", "digits", "--arch", "mlp", "--latent-dim", "64",
                        "--max-steps", "2", "--out", str(disk / "run"), "--no-progress"],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=600)
    if r.returncode == 97:
        pytest.skip("no tmpfs could be mounted here")
    err = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert r.returncode == 1 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert err[0].startswith(f"error: could not write {disk}/run/") and "the disk is full" in err[0], err
    left = r.stdout.split("left:", 1)[1].split()
    assert left and not [name for name in left if name.endswith(".tmp")], f"temporary files left: {left}"


def test_a_read_only_run_folder_says_what_to_do(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    shutil.copytree(run, folder)
    r = _cli_on_read_only(folder, ["train", "--out", str(folder), "--resume", "--max-steps", "5", "--no-progress"], {})
    if r is not None:
        err = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
        assert r.returncode == 1 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert err[0].startswith(f"error: could not write {folder}/") and "read-only: choose a writable" in err[0]
        return
    _simulated_read_only(folder, monkeypatch)
    with pytest.raises(WriteError, match=f"could not write {folder}.*read-only: choose a writable folder"):
        Trainer.resume(folder, max_steps=5).fit()


# side files never block a checkpoint ---------------------------------------------------------------------------------
def test_a_corrupt_eval_json_never_blocks_a_checkpoint(model_dir: Path) -> None:
    (model_dir / rf.EVAL).write_text('{"elbo": -50, oops')
    with pytest.warns(UserWarning, match=f"leaves out {model_dir / rf.EVAL}.*not valid JSON"):
        assert Trainer.resume(model_dir, max_steps=5).fit().status == "finished"
    with safe_open(str(model_dir / rf.CHECKPOINT), "pt") as f:
        ckpt_step = json.loads(f.metadata()["state"])["step"]
    assert ckpt_step == 5 == int(rf.weights_metadata(model_dir)["step"]), "weights and checkpoint agree"
    assert "## Test metrics" not in (model_dir / rf.CARD).read_text()


def test_save_pretrained_never_leaves_a_folder_without_its_config(model_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import vaecore.utils as utils

    model = vaecore.load(model_dir)
    config, weights = (model_dir / "config.json").read_bytes(), (model_dir / "model.safetensors").read_bytes()
    with monkeypatch.context() as m:
        _interrupt_after(m, utils, "replace_file")
        with pytest.raises(KeyboardInterrupt):
            model.save_pretrained(model_dir)
    assert (model_dir / "config.json").read_bytes() == config
    assert (model_dir / "model.safetensors").read_bytes() == weights
    model.save_pretrained(model_dir)
    assert rf.consistent_pair(model_dir) and "config_sha256" in rf.weights_metadata(model_dir)


# an evaluation: per_image.safetensors + eval.json ---------------------------------------------------------------------
def _evaluation(model_dir: Path, digits: vaecore.Dataset, n_test: int) -> tuple[dict, object]:
    from vaecore.evaluation import metrics
    from vaecore.evaluation.per_image import per_image_from

    result = metrics.evaluate(vaecore.load(model_dir), digits, ["mse"], n_test=n_test, per_image=True)
    store = per_image_from(result, metrics.image_set(result))
    result.pop("per_image")
    return result, store


def test_an_evaluation_interrupted_between_its_files_keeps_the_old_pair_apart(
        model_dir: Path, digits: vaecore.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    import vaecore.utils as utils
    from vaecore.evaluation.per_image import load_per_image, save_per_image
    from vaecore.evaluation.protocol import write_evaluation

    old, old_store = _evaluation(model_dir, digits, 8)
    write_evaluation(model_dir, old, old_store)
    loaded = load_per_image(model_dir)
    assert loaded.images.indices == old_store.images.indices  # a whole pair loads
    assert loaded.estimate("mse").value == pytest.approx(old["mse"], rel=1e-5)  # float32 sums
    new, new_store = _evaluation(model_dir, digits, 12)
    with monkeypatch.context() as m:  # killed after the per-image rename, before eval.json's
        _interrupt_after(m, utils, "replace_file", calls=1)
        with pytest.raises(KeyboardInterrupt):
            write_evaluation(model_dir, new, new_store)
    assert json.loads((model_dir / rf.EVAL).read_text())["mse"] == pytest.approx(old["mse"])
    with pytest.raises(ValueError, match="does not belong to the eval.json beside it .*evaluate the model again"):
        load_per_image(model_dir)
    from explorer import evaluations

    monkeypatch.setattr(evaluations, "local_folder", lambda spec: model_dir)
    shown = evaluations.precomputed("x")
    assert shown["mse"] == pytest.approx(old["mse"]) and shown["_per_image"] is None, "the app leaves them out"
    write_evaluation(model_dir, new, new_store)  # the next evaluation mends the pair
    assert len(load_per_image(model_dir).images.indices) == 12
    # per-image values saved on their own (no manifest) load beside any eval.json, as before manifests
    save_per_image(model_dir, old_store)
    assert len(load_per_image(model_dir).images.indices) == 8


# the app's runs folder read-only --------------------------------------------------------------------------------------
def test_starting_a_training_in_a_read_only_runs_folder_is_one_message(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from explorer.jobs import JobError, JobManager

    runs = tmp_path / "runs"
    runs.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if Path(os.fsdecode(path)).is_relative_to(runs):  # type: ignore[arg-type]
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(JobError, match=f"could not write {runs}/.*read-only: choose a writable folder"):
        JobManager(runs).start("sess01", "sigma-vae", {"data": "digits", "max_steps": 2})
    monkeypatch.setenv("VAE_APP_RUNS", str(runs))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    page = AppTest.from_file(str(ROOT / "pages" / "1_Training_monitor.py"), default_timeout=120).run()
    page.selectbox(key="tm_data").set_value("digits")
    page.button(key="tm_start").click().run()
    assert not page.exception, [e.value for e in page.exception]
    assert any("read-only: choose a writable folder" in e.value for e in page.error), [e.value for e in page.error]

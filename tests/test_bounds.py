"""Resource bounds (vaecore.limits) and API input checks: every size that a user or a file controls is refused
before allocation with a message naming the limit and the environment variable that raises it; API misuse is a
ValueError that says what to pass. The memory a hostile request costs the app is measured in tests/memory_probe.py
(test_hostile_requests_stay_within_the_memory_budget)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hostile
import numpy as np
import pytest
import torch

import vaecore
import vaecore.limits as limits
from explorer.jobs import JobError, check_name, list_runs
from explorer.uploads import parse_uploads
from vaecore.hub import ModelLoadError
from vaecore.training import run_folder as rf

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return hostile.model_folders(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def model(folders: dict[str, Path]) -> vaecore.PretrainedModel:
    return vaecore.load(folders["valid"])


# limits --------------------------------------------------------------------------------------------------------
def test_each_limit_has_a_default_and_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    envs = [env for env, *_ in limits.table()]
    assert len(envs) == len(set(envs)) >= 15 and all(e.startswith("VAE_MAX_") for e in envs)
    assert limits.SAMPLES.value == limits.SAMPLES.default
    monkeypatch.setenv("VAE_MAX_SAMPLES", "7")
    assert limits.SAMPLES.value == 7
    with pytest.raises(limits.LimitError, match=r"n is 8 samples; the limit is 7 samples.*VAE_MAX_SAMPLES"):
        limits.check_count(8)
    for bad in ("lots", "0", "-3", "2.5", "nan"):
        monkeypatch.setenv("VAE_MAX_SAMPLES", bad)
        with pytest.raises(limits.LimitError, match="VAE_MAX_SAMPLES.*positive integer"):
            limits.check_count(1)


# models from files: config.json bounds, types and depth; one loader path ------------------------------------------
@pytest.mark.parametrize("case, message", [
    ("input_shape [1, 3000, 3000]", "VAE_MAX_IMAGE_SIDE"),
    ("input_shape [1, 100000, 100000]", "VAE_MAX_IMAGE_SIDE"),
    ("input_shape [512, 28, 28]", "VAE_MAX_CHANNELS"),
    ("latent_dim 10**6", "VAE_MAX_LATENT_DIM"),
    ("vamp_components 10**6", "vamp_components"),
    ("model_type dict", "model_type must be a string"),
    ("model_type list", "model_type must be a string"),
    ("config 100,000 deep", "VAE_MAX_JSON_DEPTH"),
    ("config 17 MB", "VAE_MAX_JSON_MB"),
    ("preset 10**6 characters", "VAE_MAX_STRING_LENGTH"),
    ("weights NaN", "NaN"),
    ("weights int64", "torch.int64"),
    ("weights header claims 4 GB", "corrupt or truncated"),
])
def test_a_hostile_model_folder_is_refused_by_every_loader(folders: dict[str, Path], case: str, message: str) -> None:
    folder = folders[case]
    for load in (vaecore.load, vaecore.VAE.from_pretrained, vaecore.PretrainedModel.from_pretrained):
        with pytest.raises(ModelLoadError, match=message) as err:
            load(folder)
        assert str(folder) in str(err.value), "the message names the file"


def test_the_parameter_count_is_bounded_before_the_weights_are_allocated(folders: dict[str, Path],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from vaecore.models.base import MODEL_TYPES, parameter_count

    config = json.loads((folders["valid"] / "config.json").read_text())
    model = vaecore.load(folders["valid"])
    n = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    assert parameter_count(MODEL_TYPES["vae"], config) == n
    monkeypatch.setenv("VAE_MAX_MODEL_PARAMS", str(n - 1))
    with pytest.raises(ModelLoadError, match="VAE_MAX_MODEL_PARAMS"):
        vaecore.load(folders["valid"])
    with pytest.raises(limits.LimitError, match="VAE_MAX_MODEL_PARAMS"):
        vaecore.build_preset("sigma-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4)


def test_from_pretrained_refuses_another_family_and_model_arguments(folders: dict[str, Path]) -> None:
    from vaecore.models.autoencoders import AE

    with pytest.raises(ModelLoadError, match="holds a 'vae' model"):
        AE.from_pretrained(folders["valid"])
    with pytest.raises(ValueError, match="no model arguments"):
        vaecore.VAE.from_pretrained(folders["valid"], latent_dim=3)
    loaded = vaecore.VAE.from_pretrained(folders["valid"])
    assert not loaded.training and torch.equal(loaded.decode(torch.zeros(1, 4)),
                                               vaecore.load(folders["valid"]).decode(torch.zeros(1, 4)))


def test_a_hub_repo_goes_through_the_same_checks(folders: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from test_hub import _populate_hub_cache

    _populate_hub_cache(tmp_path / "hub", "someone/nan-vae", folders["weights NaN"])
    _populate_hub_cache(tmp_path / "hub", "someone/deep-vae", folders["config 100,000 deep"])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for repo, message in (("someone/nan-vae", "NaN"), ("someone/deep-vae", "VAE_MAX_JSON_DEPTH")):
        for load in (vaecore.load, vaecore.VAE.from_pretrained):
            with pytest.raises(ModelLoadError, match=message):
                load(repo)


def test_a_hub_download_is_sized_before_anything_is_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub's listing of a repo (sizes included) is checked before the download, which then fetches the commit
    that was checked; files vaecore does not read are neither counted nor downloaded."""
    from types import SimpleNamespace

    import huggingface_hub

    from vaecore import hub

    repos = {"someone/huge": [("model.safetensors", 3 * 2**30), ("config.json", 200)],
             "someone/many": [(f"sampler-{i}.json", 10) for i in range(300)],
             "someone/fine": [("model.safetensors", 2**20), ("config.json", 200), ("weights.bin", 10**12)]}

    class FakeApi:
        def model_info(self, repo_id: str, **kwargs: object) -> SimpleNamespace:
            assert kwargs["files_metadata"] is True
            return SimpleNamespace(sha=f"{len(repo_id):040d}", siblings=[SimpleNamespace(rfilename=name, size=size)
                                                                         for name, size in repos[repo_id]])

    downloads = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, **kwargs: downloads.append((repo_id, kwargs)) or str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(limits.LimitError, match="Hub repo 'someone/huge': the size of its files is 3,073 MiB; the "
                       "limit is 2,048 MiB .*VAE_MAX_DOWNLOAD_MB"):
        hub.download("someone/huge")
    with pytest.raises(limits.LimitError, match="the files to download is 300 files; .*VAE_MAX_DOWNLOAD_FILES"):
        vaecore.load("someone/many")
    assert downloads == [], "nothing was downloaded"
    monkeypatch.setenv("VAE_MAX_DOWNLOAD_MB", "4096")
    hub.download("someone/huge")
    assert hub.download("someone/fine") == tmp_path  # the 1 TB .bin is not one of the files vaecore downloads
    assert [(repo, kw["revision"]) for repo, kw in downloads] == [("someone/huge", f"{12:040d}"),
                                                                  ("someone/fine", f"{12:040d}")]
    assert all(kw["allow_patterns"] == list(hub.DOWNLOADED) for _, kw in downloads)


def test_an_unknown_device_is_a_value_error(folders: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="unknown device 'nosuch'"):
        vaecore.load(folders["valid"], device="nosuch")


# API inputs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("z, message", [
    (torch.zeros(2, 5), r"latents of shape \(B, 4\); got \(2, 5\)"),
    (torch.zeros(4), r"z.unsqueeze\(0\)"),
    (torch.zeros(1, 2, 4), r"got \(1, 2, 4\)"),
    (torch.zeros(2, 4, dtype=torch.int64), "floating point"),
    (np.zeros((2, 4), np.float32), r"torch.from_numpy"),
    ([[0.0] * 4], "torch.Tensor"),
    (torch.full((2, 4), float("nan")), "NaN or infinite"),
    (torch.tensor([[0.0, 0.0, float("inf"), 0.0]]), "NaN or infinite"),
    (torch.zeros(0, 4), "empty batch"),
], ids=["size", "rank-1", "rank-3", "int64", "numpy", "list", "nan", "inf", "empty"])
def test_decode_says_what_latents_to_pass(model, z: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model.decode(z)


def test_decode_takes_float64_and_decodes_in_bounded_chunks(model) -> None:
    z = torch.randn(2500, 4, generator=torch.Generator().manual_seed(0))
    whole = model.decode(z)
    assert whole.shape == (2500, 1, 8, 8) and whole.dtype == torch.float32
    assert torch.allclose(model.decode(z[2000:2010].double()), whole[2000:2010], atol=1e-6)


@pytest.mark.parametrize("n, message", [(-1, ">= 1"), (0, ">= 1"), (1.5, "whole number"), ("3", "whole number"),
                                        (None, "whole number"), (float("nan"), "whole number"), (True, "whole number"),
                                        (10**12, "VAE_MAX_SAMPLES")])
def test_sample_says_what_count_to_pass(model, n: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model.sample(n)
    with pytest.raises(ValueError, match=message):
        model.sample_latents(n)


def test_sample_counts_may_be_numpy_integers_and_the_decoded_size_is_bounded(model, monkeypatch) -> None:
    assert model.sample(np.int64(3)).shape == (3, 1, 8, 8)
    monkeypatch.setenv("VAE_MAX_TENSOR_MB", "1")  # 1 MiB holds 4096 8×8 float images
    assert model.sample(4096).shape[0] == 4096
    with pytest.raises(limits.LimitError, match="VAE_MAX_TENSOR_MB"):
        model.sample(4097)


def test_empty_batches_are_refused(model) -> None:
    empty = torch.zeros(0, 1, 8, 8)
    for call in (model.elbo, model.loss, model.encode, lambda x: model.log_importance_weights(x, 2)):
        with pytest.raises(ValueError, match="empty batch"):
            call(empty)


def test_a_run_folder_must_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    for bad, message in ((tmp_path / "a-file", "is a file"), (tmp_path / "a-file" / "run", "is a file"),
                         ("", "empty"), (None, "must be a path")):
        with pytest.raises(rf.RunFolderError, match=message):
            rf.RunLock(bad).acquire()  # type: ignore[arg-type]


def test_train_says_what_to_pass(tmp_path: Path, digits: vaecore.Dataset) -> None:
    config = vaecore.TrainConfig(max_steps=1, batch_size=64)
    with pytest.raises(ValueError, match="dataset must be a vaecore.Dataset.*got NoneType"):
        vaecore.train("sigma-vae", None, tmp_path / "r", config)  # type: ignore[arg-type]
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="is a file; a run folder is a folder"):
        vaecore.train("sigma-vae", digits, tmp_path / "a-file", config, arch="mlp", latent_dim=4)
    with pytest.raises(ValueError, match="empty"):
        vaecore.train("sigma-vae", digits, "", config, arch="mlp", latent_dim=4)
    with pytest.raises(ValueError, match="config must be a vaecore.TrainConfig"):
        vaecore.train("sigma-vae", digits, tmp_path / "r", {"max_steps": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model must be a vaecore model"):
        vaecore.Trainer(torch.nn.Linear(2, 2), digits, config, tmp_path / "r")  # type: ignore[arg-type]
    assert not (tmp_path / "r").exists()


def test_config_sizes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="VAE_MAX_BATCH_SIZE"):
        vaecore.TrainConfig(batch_size=10**9)
    with pytest.raises(ValueError, match="VAE_MAX_STRING_LENGTH"):
        vaecore.TrainConfig(data="x" * 5000)
    monkeypatch.setenv("VAE_MAX_LATENT_DIM", "8")
    with pytest.raises(ValueError, match="VAE_MAX_LATENT_DIM"):
        vaecore.model_config("sigma-vae", latent_dim=9)


# uploads ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda: ("dir.npz", hostile.zip_bytes({"x.npy/": hostile.npy_bytes(np.zeros((30_000, 28, 28), np.uint8))})),
     "'x.npy/' is a folder entry"),
    (lambda: ("many.npz", hostile.zip_bytes({f"a{i}.npy": hostile.npy_bytes(np.zeros(1, np.uint8))
                                             for i in range(20_000)}, compress=False)),
     r"20,000 members.*VAE_MAX_NPZ_MEMBERS"),
    (lambda: ("labels.npz", hostile.zip_bytes({"x.npy": hostile.npy_bytes(np.zeros((3, 28, 28), np.uint8)),
                                               "y.npy": hostile.npy_bytes(np.array([0, 1, 10**15]))})),
     r"labels must be class numbers 0..999, got 1,000,000,000,000,000.*VAE_MAX_CLASSES"),
    (lambda: ("flabels.npz", hostile.zip_bytes({"x.npy": hostile.npy_bytes(np.zeros((2, 28, 28), np.uint8)),
                                                "y.npy": hostile.npy_bytes(np.array([0.0, 1e300]))})),
     "VAE_MAX_CLASSES"),
    (lambda: ("forged.npy", hostile.npy_header((3_000_000, 28, 28))), "VAE_MAX_UPLOAD_IMAGES"),
    (lambda: ("bomb.png", hostile.png_header(60_000, 60_000)), "VAE_MAX_PNG_PIXELS"),
], ids=["folder-member", "20000-members", "label-1e15", "label-1e300", "forged-header", "png-bomb"])
def test_hostile_uploads_are_refused_before_decoding(make, message: str) -> None:
    name, data = make()
    with pytest.raises(ValueError, match=message) as err:
        parse_uploads([(name, data)], SHAPE)
    assert len(str(err.value)) < 400, "the message stays one readable line (no list of 20,000 keys)"
    assert "pickled" not in str(err.value)


def test_the_decoded_size_of_all_members_together_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = hostile.zip_bytes({"x_train.npy": hostile.npy_bytes(np.zeros((200, 28, 28), np.float32)),
                              "extra.npy": hostile.npy_bytes(np.zeros((1, 300, 300)))})
    assert len(parse_uploads([("two.npz", data)], SHAPE)) == 200
    monkeypatch.setenv("VAE_MAX_UPLOAD_MB", "1")  # the images take 0.6 MB, the extra array 0.7 MB
    with pytest.raises(limits.LimitError, match=r"its arrays would take 1 MB.*VAE_MAX_UPLOAD_MB"):
        parse_uploads([("two.npz", data)], SHAPE)
    with pytest.raises(limits.LimitError, match="too many images.*VAE_MAX_UPLOAD_IMAGES"):  # 1 MiB: 334 images
        parse_uploads([("a.npy", hostile.npy_bytes(np.zeros((200, 28, 28), np.uint8)))] * 2, SHAPE)


def test_upload_errors_do_not_blame_pickles() -> None:
    for name, data in (("short.npy", hostile.npy_header((2, 28, 28))[:20]), ("junk.npz", b"PK\x03\x04junk")):
        with pytest.raises(ValueError) as err:
            parse_uploads([(name, data)], SHAPE)
        assert "pickled" not in str(err.value), str(err.value)
    with pytest.raises(ValueError, match="object .pickled. arrays are not supported"):
        parse_uploads([("o.npy", hostile.npy_header((2,), "|O"))], SHAPE)


def test_npz_data_files_are_bounded_like_uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vaecore.data.arrays import read_arrays

    (tmp_path / "dir.npz").write_bytes(hostile.zip_bytes({"x.npy/": hostile.npy_bytes(np.zeros((5, 8, 8)))}))
    with pytest.raises(ValueError, match="folder entry"):
        read_arrays(tmp_path / "dir.npz")
    monkeypatch.setenv("VAE_MAX_NPZ_MEMBERS", "2")
    (tmp_path / "three.npz").write_bytes(hostile.zip_bytes({f"{k}.npy": hostile.npy_bytes(np.zeros(2))
                                                            for k in "abc"}))
    with pytest.raises(ValueError, match="VAE_MAX_NPZ_MEMBERS"):
        read_arrays(tmp_path / "three.npz")


# JSON side files and the training monitor ---------------------------------------------------------------------------
def test_deep_and_huge_json_side_files_give_a_message_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / rf.TRAIN).write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(rf.RunFolderError, match=f"{tmp_path / rf.TRAIN}.*VAE_MAX_JSON_DEPTH"):
        rf.read_train_json(tmp_path)


def test_a_non_numeric_step_hides_no_run(tmp_path: Path) -> None:
    session = tmp_path / "sess"
    for run in ("good", "bad"):
        (session / run).mkdir(parents=True)
        rf.append_metric(session / run, {"kind": "event", "event": "started", "step": 0, "total_steps": 4})
        rf.append_metric(session / run, {"kind": "step", "step": 2, "loss": 1.0})
    with open(session / "bad" / rf.METRICS, "a") as f:
        f.write(json.dumps({"kind": "step", "step": "abc"}) + "\n" + json.dumps({"kind": "step", "step": None}) + "\n"
                + "[" * 100_000 + "]" * 100_000 + "\n")
    runs = {r.name: r for r in list_runs(tmp_path, "sess")}
    assert set(runs) == {"good", "bad"} and runs["bad"].step == 2
    assert [r["step"] for r in rf.read_metrics(session / "bad")] == [0, 2]


@pytest.mark.parametrize("name", ["run\n", "run\r", "\nrun", "a/b", "..", "", "x" * 82, "run\x00"])
def test_check_name_refuses_names_with_line_breaks_or_slashes(name: str) -> None:
    with pytest.raises(JobError):
        check_name(name, "run name")


# sample --out ----------------------------------------------------------------------------------------------------
def test_sample_out_honours_the_extension_or_refuses_it(folders: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    from vaecore import cli

    for name, fmt in (("x.jpg", "JPEG"), ("x.png", "PNG"), ("x.webp", "WEBP")):
        cli.main(["sample", str(folders["valid"]), "--n", "4", "--out", str(tmp_path / name)])
        assert Image.open(tmp_path / name).format == fmt
    for name in ("x.txt", "noext"):
        with pytest.raises(SystemExit):
            cli.main(["sample", str(folders["valid"]), "--n", "4", "--out", str(tmp_path / name)])
        assert "not an image format" in capsys.readouterr().err and not (tmp_path / name).exists()


# the app: a message, never a traceback ------------------------------------------------------------------------------
LINKS = {"a 5,000-character name": "a" * 5000, "an unknown user's home": "~nosuchuser/model"}


@pytest.mark.parametrize("case", ["model_type dict", "config 100,000 deep", "input_shape [1, 100000, 100000]",
                                  "weights NaN", *LINKS])
def test_the_app_shows_a_message_not_a_traceback_for_a_hostile_model(folders: dict[str, Path], case: str,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    page = AppTest.from_file(str(ROOT / "pages" / "2_Latent_map.py"), default_timeout=120)
    spec = LINKS.get(case) or str(folders[case])
    page.query_params["model"] = spec  # a shared ?model= link
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    errors = [e.value for e in page.sidebar.error]
    assert len(errors) == 1 and spec[:80] in errors[0] and "Traceback" not in errors[0]
    assert len(errors[0]) < 1000, "a long name is shortened in the message"
    assert any("could not be loaded" in w.value for w in page.warning)


# the memory a hostile request costs the app ------------------------------------------------------------------------
CODE_MIB = 16  # what a request may take whatever its input's size (see below)


def test_hostile_requests_stay_within_the_memory_budget(tmp_path: Path) -> None:
    """Each hostile input through the app's real paths (the upload parser; the picker's Folder, Hub and ?model=
    sources in AppTest), in a subprocess that records the peak RSS each one adds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "memory_probe.py"), str(tmp_path)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    if report.get("skipped"):
        pytest.skip(report["skipped"])
    budget = limits.REQUEST_MEMORY_MB
    over = {case: row for case, row in report["cases"].items() if row["peak_mib"] > budget}
    assert not over, f"over the {budget} MiB budget per request: {over}"
    # each request within a bound derived from its sizes: its input and what it accepted, each held at most twice
    # (the data and one temporary copy), plus the memory a request takes whatever its input (imports on first use,
    # Streamlit's script run: 4 MiB or less measured; a refused 18 GB config or 80 GB upload would be far above)
    over = {case: row for case, row in report["cases"].items()
            if row["peak_mib"] > 2 * (row["input_mib"] + row["accepted_mib"]) + CODE_MIB}
    assert not over, f"above 2 x (input + accepted) + {CODE_MIB} MiB: {over}"
    for case, row in report["cases"].items():
        assert row["traceback"] is False, (case, row)
        if not case.startswith("valid"):
            assert row["refused"], (case, row)

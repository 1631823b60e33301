"""Save / load round trips: folders, bundled names, an offline Hub cache; clear errors on bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import vaecore
from vaecore.hub import ModelLoadError, publish
from vaecore.presets import model_config


def _model(preset: str = "sigma-vae", **kw: object) -> vaecore.VAE:
    torch.manual_seed(0)
    model = vaecore.VAE(model_config(preset, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, **kw).to_dict())
    # non-trivial buffers too (the running σ)
    model.likelihood.log_sigma.fill_(-1.234)
    return model.eval()


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.rand(5, 1, 8, 8)
    z = torch.randn(5, 4)
    with torch.no_grad():
        assert torch.equal(a.encode(x)[0], b.encode(x)[0])
        assert torch.equal(a.decode(z), b.decode(z))
        assert torch.equal(a.likelihood.nll(a.decode_params(z), x), b.likelihood.nll(b.decode_params(z), x))


def test_save_load_folder_gives_identical_outputs(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "m")
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in (tmp_path / "m").iterdir()}
    loaded = vaecore.load(tmp_path / "m")
    assert isinstance(loaded, vaecore.VAE) and loaded.config == model.config
    _same_outputs(model, loaded)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "sigma-vae" in card and "gaussian" in card


def test_bundled_name_resolves_through_checkpoints_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _model().save_pretrained(tmp_path / "tiny-sigma")
    monkeypatch.setenv("VAE_CHECKPOINTS", str(tmp_path))
    assert "tiny-sigma" in vaecore.hub.bundled_names()
    _same_outputs(_model(), vaecore.load("tiny-sigma"))


def _populate_hub_cache(cache: Path, repo_id: str, files: Path) -> None:
    """The on-disk layout huggingface_hub uses: refs/main -> commit, snapshots/<commit>/files."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(files, repo / "snapshots" / commit)


def test_hub_repo_id_loads_from_offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "src")
    _populate_hub_cache(tmp_path / "hub", "someone/tiny-sigma", tmp_path / "src")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VAE_CHECKPOINTS", str(tmp_path / "none"))
    _same_outputs(model, vaecore.load("someone/tiny-sigma"))
    with pytest.raises(ModelLoadError, match="not in the local hub cache"):
        vaecore.load("someone/not-cached")


def test_truncated_weights_give_a_clear_error(tmp_path: Path) -> None:
    _model().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="model.safetensors is corrupt or truncated"):
        vaecore.load(tmp_path)


def test_mismatched_config_gives_a_clear_error(tmp_path: Path) -> None:
    _model().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["latent_dim"] = 7
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="does not match"):
        vaecore.load(tmp_path)
    cfg["latent_dim"], cfg["colour"] = 4, "blue"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="colour"):
        vaecore.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        vaecore.load(tmp_path)


def test_unknown_names_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model called 'no-such-model'"):
        vaecore.load("no-such-model")
    with pytest.raises(KeyError, match="known models"):
        vaecore.get_preset("sigmavae")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json is missing"):
        vaecore.load(tmp_path / "empty")


def test_nothing_is_unpickled(tmp_path: Path) -> None:
    """A pickle-based weights file is never read: only model.safetensors counts."""
    model = _model()
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="model.safetensors is missing"):
        vaecore.load(tmp_path)


def test_publish_uploads_the_folder_through_the_hub_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real code path up to the upload call; the hub client is replaced at its boundary."""
    import huggingface_hub

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            calls.append(("init", {"token": token}))

        def create_repo(self, repo_id: str, **kw: object) -> None:
            calls.append(("create_repo", {"repo_id": repo_id, **kw}))

        def upload_folder(self, **kw: object) -> None:
            calls.append(("upload_folder", kw))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    _model().save_pretrained(tmp_path)
    url = publish(tmp_path, "me/tiny", token="t0ken")
    assert url == "https://huggingface.co/me/tiny"
    names = [c[0] for c in calls]
    assert names == ["init", "create_repo", "upload_folder"]
    upload = calls[2][1]
    assert upload["repo_id"] == "me/tiny" and Path(upload["folder_path"]) == tmp_path
    assert "checkpoint.safetensors" in upload["ignore_patterns"]
    (tmp_path / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelLoadError):
        publish(tmp_path, "me/tiny")

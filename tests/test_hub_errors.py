"""The Hub picker tells 'offline' from 'no such repo' (and from other HTTP answers)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from budget import seconds

from vaecore import ModelLoadError
from vaecore.hub import resolve

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = seconds(90)


def _response(status: int) -> SimpleNamespace:
    """What huggingface_hub's HTTP errors read of a response."""
    return SimpleNamespace(status_code=status, headers={}, request=None)


@pytest.mark.parametrize(("error", "said"), [
    (lambda: __import__("huggingface_hub.errors").errors.RepositoryNotFoundError("404", response=_response(404)),
     "the Hub has no such repo"),
    (lambda: __import__("huggingface_hub.errors").errors.LocalEntryNotFoundError("Connection error"),
     "could not be reached"),
    (lambda: __import__("huggingface_hub.errors").errors.HfHubHTTPError("503", response=_response(503)),
     "answered HTTP 503"),
    (lambda: OSError("Name or service not known"), "could not be reached"),
])
def test_each_failure_says_what_it_is(error, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def fail(*args, **kwargs):
        raise error()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: SimpleNamespace(model_info=fail))  # the listing fails alike
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelLoadError, match=said):
        resolve("someone/some-vae")


def test_offline_mode_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def fail(*args, **kwargs):
        raise LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set"):
        resolve("someone/some-vae")


def _cached_repo(tmp_path: Path, repo_id: str) -> Path:
    """A tiny model saved to a folder and laid out in a hub cache (refs/main -> snapshots/<commit>/)."""
    import torch

    import vaecore
    from vaecore.presets import model_config

    torch.manual_seed(0)
    model = vaecore.VAE(model_config("sigma-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4,
                                     dataset="digits").to_dict())
    model.save_pretrained(tmp_path / "folder")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tmp_path / "folder", repo / "snapshots" / commit)
    return tmp_path / "folder"


def test_app_picker_offline_loads_the_cache_and_a_folder_and_names_offline(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1 and a pre-populated hub cache: a cached repo loads, an uncached one is said to be
    missing from the cache in offline mode (not 'no such repo'), and a local folder loads."""
    from streamlit.testing.v1 import AppTest

    folder = _cached_repo(tmp_path, "someone/tiny-vae")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "pages/3_Interpolation.py"), default_timeout=TIMEOUT).run()
    at.sidebar.segmented_control(key="vae_picker_source").set_value("Hub").run()
    at.sidebar.text_input(key="vae_picker_repo").input("someone/tiny-vae").run()
    assert not at.exception and not at.sidebar.error
    assert any("latent" in c.value for c in at.sidebar.caption)
    at.sidebar.text_input(key="vae_picker_repo").input("someone/not-cached").run()
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "HF_HUB_OFFLINE is set" in errors[0] and "no such repo" not in errors[0]
    at.sidebar.segmented_control(key="vae_picker_source").set_value("Folder").run()
    at.sidebar.text_input(key="vae_picker_folder").input(str(folder)).run()
    assert not at.exception and not at.sidebar.error
    assert any("latent" in c.value for c in at.sidebar.caption)

"""The T-VAE transfer against its baselines: doing nothing (the k = 0 reconstruction at every k) and, on the page,
the plain VAE's difference vector; the Transformations page shows the engine's numbers and says when T fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds

from vaecore.data import transforms
from vaecore.evaluation.transfer import transfer_check
from vaecore.evaluation.uncertainty import mean_se
from vaecore.models.tvae import TVAE, TVAEConfig, apply_transformation, extract_transformation

ROOT = Path(__file__).resolve().parent.parent


def _setup(steps: int = 2):
    torch.manual_seed(0)
    model = TVAE(TVAEConfig(latent_dim=4, hidden=32).to_dict()).eval()
    x = torch.rand(6, 1, 28, 28)
    T = extract_transformation(model, x, transforms.rotation(x, 20.0), transforms.rotation(x, -20.0))
    return model, x, T, apply_transformation(model, x, T, steps)


def test_errors_are_the_squared_distances_and_k0_is_the_baseline() -> None:
    model, x, T, out = _setup()
    truth = torch.rand_like(out)
    check = transfer_check(model, x, T, truth, steps=2)
    assert check.ks == (-2, -1, 0, 1, 2)
    want = ((out.double() - truth.double()) ** 2).flatten(2).sum(-1)
    torch.testing.assert_close(check.moved, want)
    torch.testing.assert_close(check.still, ((out[:, 2:3].double() - truth.double()) ** 2).flatten(2).sum(-1))
    assert torch.equal(check.moved[:, 2], check.still[:, 2])  # at k = 0 moving is doing nothing
    e = check.error(1)
    ref = mean_se(want[:, 3].numpy())
    assert (e.value, e.se, e.n) == (ref.value, ref.se, 6)
    gain = check.gain(-1)
    diff = (want[:, 1] - check.still[:, 1]).numpy()
    assert gain.mean == pytest.approx(float(diff.mean()), rel=1e-12) and gain.n == 6 and gain.paired


def test_verdicts_follow_the_rule() -> None:
    model, x, T, out = _setup(steps=1)
    # the truth is what z + k·T decodes to: T transfers perfectly, doing nothing does not
    perfect = transfer_check(model, x, T, out, steps=1)
    assert float(perfect.moved.abs().max()) == 0.0
    assert [str(perfect.verdict(k)) for k in (-1, 1)] == ["better", "better"]
    # the truth is the reconstruction: doing nothing is exact, moving by T can only be worse
    still = out[:, 1:2].expand_as(out).contiguous()
    assert [str(transfer_check(model, x, T, still, steps=1).verdict(k)) for k in (-1, 1)] == ["worse", "worse"]
    # T = 0 is doing nothing: no difference to decide
    zero = transfer_check(model, x, torch.zeros_like(T), torch.rand_like(out), steps=1)
    assert torch.equal(zero.moved, zero.still) and str(zero.verdict(1)) == "undecided"
    with pytest.raises(ValueError, match="ground truth has shape"):
        transfer_check(model, x, T, out[:, :2], steps=1)


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in T-VAE and VAE (seeded random weights, the real architectures) as the checkpoints folder."""
    from vaecore import build_model, model_config
    from vaecore.models import tvae  # noqa: F401  (registers the tvae and vae presets)

    for seed, preset in enumerate(("tvae", "vae")):
        torch.manual_seed(seed)
        build_model(model_config(preset, input_shape=(1, 28, 28), dataset="mnist").to_dict()).save_pretrained(
            tmp_path / "zoo" / preset)
    monkeypatch.setenv("VAE_CHECKPOINTS", str(tmp_path / "zoo"))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "zoo"


def test_page_table_is_the_engines_check_and_warns_when_T_does_not_beat_doing_nothing(zoo: Path) -> None:
    from streamlit.testing.v1 import AppTest

    from explorer import transforms as page_transforms
    from vaecore import load_dataset
    from vaecore.hub import load_folder

    at = AppTest.from_file(str(ROOT / "pages/6_Transformations.py"), default_timeout=seconds(180)).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "doing nothing" in d.value.columns)
    # the same images and transformation the page used (its defaults), through the engine
    x_all, _ = load_dataset("mnist").split("test")
    idx = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(1))[:5]
    others = x_all[idx]
    theta = page_transforms.transform_matrix("rotation", 20.0)
    x = x_all[0:1]
    truth = torch.stack([page_transforms.apply_power(others, theta, k) for k in range(-2, 3)], dim=1)
    warned = " ".join(w.value for w in at.warning)
    for preset in ("tvae", "vae"):
        model = load_folder(zoo / preset)
        T = extract_transformation(model, x, transforms.apply_affine(x, theta),
                                   transforms.apply_affine(x, transforms.invert(theta)))[0]
        check = transfer_check(model, others, T, truth, steps=2)
        rows = table[table["model"].str.startswith("T-VAE" if preset == "tvae" else "VAE")]
        assert len(rows) == 2
        for k, row in zip((-1, 1), rows.itertuples(), strict=True):
            assert row.k == f"{k:+d}"
            assert row._3 == check.error(k).text() and row.difference == check.gain(k).text()
        fails = any(str(check.verdict(k)) != "better" for k in (-1, 1))
        assert (rows["model"].iloc[0] in warned) == fails
    assert np.all(table["verdict"].isin(["T helps", "T hurts", "no difference shown"]))

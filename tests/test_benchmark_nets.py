"""Pythae's benchmark networks (ResNets of Table 3, ConvNets of Table 2) and user architectures
registered with `vaecore.register_architecture` (save → load in a fresh process, the error without it)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from budget import seconds

import vaecore
from vaecore.components.nets import build_decoder, build_encoder, count_parameters

REPO = Path(__file__).resolve().parents[1]
LATENT = 16

# (encoder, decoder) trainable parameters with latent_dim 16, μ and log σ² heads, one decoder channel per
# image channel; the ResNet encoders equal Pythae's Encoder_ResNet_VAE_* (whose two heads are our one)
PARAMS = {
    ("pythae-resnet", (1, 28, 28)): (427_680, 339_009),
    ("pythae-resnet", (3, 32, 32)): (626_336, 355_715),
    ("pythae-resnet", (3, 64, 64)): (577_312, 882_307),
    ("pythae-conv", (1, 28, 28)): (11_050_656, 6_181_377),
    ("pythae-conv", (3, 32, 32)): (11_153_056, 11_614_467),
    ("pythae-conv", (3, 64, 64)): (11_546_272, 18_329_603),
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("arch", "shape"), list(PARAMS), ids=lambda v: str(v))
def test_benchmark_output_shapes_and_parameter_counts(arch: str, shape: tuple[int, int, int]) -> None:
    enc, dec = build_encoder(arch, shape, LATENT), build_decoder(arch, shape, LATENT, shape[0])
    x = torch.rand(2, *shape)
    h = enc(x)
    assert h.shape == (2, 2 * LATENT)
    assert dec(h[:, :LATENT]).shape == (2, *shape)
    assert (count_parameters(enc), count_parameters(dec)) == PARAMS[(arch, shape)]
    assert build_decoder(arch, shape, LATENT, 256)(torch.randn(2, LATENT)).shape == (2, 256, *shape[1:])


def test_resnet_refuses_other_sizes() -> None:
    for shape in ((1, 8, 8), (3, 48, 48), (3, 64, 32)):
        with pytest.raises(ValueError, match="pythae-resnet.*instead"):
            build_encoder("pythae-resnet", shape, LATENT)


def test_a_preset_trains_a_step_on_the_mnist_resnet() -> None:
    model = vaecore.build_preset("bernoulli-vae", input_shape=(1, 28, 28), arch="pythae-resnet", latent_dim=8, seed=0)
    out = model.train().loss(torch.rand(4, 1, 28, 28))
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in model.parameters())


_MODULE = '''
"""A user architecture, registered at import."""
from torch import nn

import vaecore


def encoder(shape, out_features):
    c, h, w = shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 32), nn.Tanh(), nn.Linear(32, out_features))


def decoder(shape, latent_dim, out_channels):
    c, h, w = shape
    return nn.Sequential(nn.Linear(latent_dim, 32), nn.Tanh(), nn.Linear(32, out_channels * h * w),
                         nn.Unflatten(1, (out_channels, h, w)))


ARCH = vaecore.register_architecture("tiny-mlp", encoder, decoder, description="two tanh layers")
'''


def _run(code: str, cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=seconds(300))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Architectures registered by a test are forgotten after it."""
    from vaecore.components import nets

    for registry in ("ARCHITECTURES", "_ENCODERS", "_DECODERS", "_CUSTOM"):
        monkeypatch.setattr(nets, registry, dict(getattr(nets, registry)))


def test_register_architecture_round_trip_in_a_fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             clean_registry: None) -> None:
    (tmp_path / "my_nets.py").write_text(_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_nets", raising=False)
    my_nets = importlib.import_module("my_nets")
    assert my_nets.ARCH == "my_nets:tiny-mlp"
    model = vaecore.build_preset("bernoulli-vae", input_shape=(1, 8, 8), arch=my_nets.ARCH, latent_dim=3, seed=0)
    model.save_pretrained(tmp_path / "model")
    x = torch.linspace(0, 1, 2 * 64).reshape(2, 1, 8, 8)
    with torch.no_grad():
        expected = model.eval().reconstruct(x).flatten().tolist()
    monkeypatch.delitem(sys.modules, "my_nets")
    loaded = _run(f'''
        import json, torch, vaecore
        try:
            vaecore.load({str(tmp_path / "model")!r})
        except Exception as e:
            message = str(e)
        else:
            message = ""
        import my_nets
        model = vaecore.load({str(tmp_path / "model")!r})
        x = torch.linspace(0, 1, 2 * 64).reshape(2, 1, 8, 8)
        with torch.no_grad():
            print(json.dumps({{"message": message, "out": model.reconstruct(x).flatten().tolist()}}))
    ''', tmp_path)
    assert "import my_nets" in loaded["message"] and "my_nets:tiny-mlp" in loaded["message"]
    assert loaded["out"] == expected


def test_register_architecture_checks_names_and_outputs(clean_registry: None) -> None:
    from torch import nn

    with pytest.raises(ValueError, match="built-in"):
        vaecore.register_architecture("mlp", lambda s, o: nn.Identity(), lambda s, d, c: nn.Identity())
    key = vaecore.register_architecture("bad-out", lambda s, o: nn.Sequential(nn.Flatten(), nn.Linear(64, o + 1)),
                                        lambda s, d, c: nn.Identity(), module="tests_bad")
    assert key == "tests_bad:bad-out"
    with pytest.raises(ValueError, match="must return"):
        build_encoder(key, (1, 8, 8), 2)
    with pytest.raises(ValueError, match="did you mean 'tests_bad:bad-out'"):
        build_encoder("bad-out", (1, 8, 8), 2)
    with pytest.raises(ValueError, match="`import nowhere_module`"):
        build_encoder("nowhere_module:net", (1, 8, 8), 2)

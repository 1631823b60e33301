"""The measured CPU convolution kernels: the GEMM lowering is the same function as PyTorch's
convolutions (values and gradients), a tuned model computes what the plain one does, and a
run's kernel choices are saved and restored so resume stays exact."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import vaecore
from vaecore import TrainConfig, Trainer
from vaecore.presets import model_config
from vaecore.runtime import conv_autotune
from vaecore.training import run_folder as rf

CONVS = [  # (in, out, kernel, stride, padding, bias, input H×W)
    (3, 5, 4, 2, 1, True, (9, 9)),
    (3, 5, 3, 1, 0, False, (6, 7)),
    (2, 4, (3, 2), (2, 1), (1, 0), True, (7, 5)),
]
TRANSPOSED = [  # (in, out, kernel, stride, padding, output_padding, bias, input H×W)
    (4, 3, 3, 2, 1, 1, True, (5, 6)),
    (4, 3, 4, 2, 1, 0, True, (3, 3)),
    (2, 1, 3, 1, 0, 0, False, (4, 4)),
    (5, 2, (3, 4), (2, 3), (1, 0), (1, 2), True, (3, 4)),
]


def _grads(y: torch.Tensor, inputs: list[torch.Tensor], g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(y, inputs, g)


@pytest.mark.parametrize("spec", CONVS)
def test_gemm_conv2d_is_conv2d(spec: tuple) -> None:
    cin, cout, k, s, p, bias, hw = spec
    m = torch.nn.Conv2d(cin, cout, k, s, p, bias=bias).double()
    x = torch.randn(3, cin, *hw, dtype=torch.float64, requires_grad=True)
    ref = F.conv2d(x, m.weight, m.bias, m.stride, m.padding)
    got = conv_autotune.conv2d_gemm(x, m.weight, m.bias, m.stride, m.padding)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    params = [x, m.weight] + ([m.bias] if bias else [])
    for a, b in zip(_grads(got, params, g), _grads(ref, params, g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert got.is_contiguous(), "an NCHW input gives an NCHW output, as F.conv2d's"


@pytest.mark.parametrize("transposed", [False, True])
def test_gemm_output_keeps_a_channels_last_input_layout(transposed: bool) -> None:
    x = torch.randn(4, 6, 5, 5).contiguous(memory_format=torch.channels_last)
    if transposed:
        m = torch.nn.ConvTranspose2d(6, 8, 3, 2, 1, output_padding=1)
        got = conv_autotune.conv_transpose2d_gemm(x, m.weight, m.bias, m.stride, m.padding, m.output_padding)
    else:
        m = torch.nn.Conv2d(6, 8, 3, 2, 1)
        got = conv_autotune.conv2d_gemm(x, m.weight, m.bias, m.stride, m.padding)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, m(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", TRANSPOSED)
def test_gemm_conv_transpose2d_is_conv_transpose2d(spec: tuple) -> None:
    cin, cout, k, s, p, op, bias, hw = spec
    m = torch.nn.ConvTranspose2d(cin, cout, k, s, p, output_padding=op, bias=bias).double()
    x = torch.randn(3, cin, *hw, dtype=torch.float64, requires_grad=True)
    ref = m(x)
    got = conv_autotune.conv_transpose2d_gemm(x, m.weight, m.bias, m.stride, m.padding, m.output_padding)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    params = [x, m.weight] + ([m.bias] if bias else [])
    for a, b in zip(_grads(got, params, g), _grads(ref, params, g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _conv_model() -> vaecore.PretrainedModel:
    return vaecore.build_model(model_config("sigma-vae", input_shape=(1, 8, 8), arch="sigma-conv",
                                            latent_dim=4).to_dict(), seed=0)


def _force(model: torch.nn.Module, choice: str, keys: list[str]) -> None:
    conv_autotune.load_choices(model, {name: dict.fromkeys(keys, choice) for name, m in model.named_modules()
                                       if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))})


def test_a_tuned_model_computes_what_the_plain_one_does() -> None:
    plain = _conv_model()
    tuned = copy.deepcopy(plain)
    assert conv_autotune.enable(tuned) == 6 and conv_autotune.enable(tuned) == 6, "idempotent"
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(tuned.reconstruct(x), plain.reconstruct(x), rtol=1e-5, atol=1e-6)
    table = conv_autotune.choices(tuned)
    assert set(table) == {n for n, m in tuned.named_modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                 torch.nn.ConvTranspose2d))}
    assert all(set(t.values()) <= {conv_autotune.NATIVE, conv_autotune.GEMM} for t in table.values())
    assert any(k.endswith("/eval") for t in table.values() for k in t), "inference shapes are tuned as such"
    # both kernels, forced: same values and the same gradients as the plain model
    keys = sorted({k.replace("/eval", "/train") for t in table.values() for k in t})
    for choice in (conv_autotune.NATIVE, conv_autotune.GEMM):
        _force(tuned, choice, keys)
        torch.manual_seed(1)
        a = tuned.loss(x).loss
        torch.manual_seed(1)
        b = plain.loss(x).loss
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
        ga = torch.autograd.grad(a, list(tuned.parameters()))
        gb = torch.autograd.grad(b, list(plain.parameters()))
        for u, v in zip(ga, gb, strict=True):
            torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-5)
    assert tuned.state_dict().keys() == plain.state_dict().keys(), "the weights keep their names"
    copied = copy.deepcopy(tuned)
    assert conv_autotune.choices(copied) == conv_autotune.choices(tuned)
    conv_autotune.disable(tuned)
    assert conv_autotune.choices(tuned) == {} and "forward" not in vars(tuned.encoder[0])


def _run(folder: Path, digits: vaecore.Dataset, callbacks=()) -> Trainer:
    cfg = TrainConfig(data="digits", max_steps=30, epochs=100, batch_size=64, log_every=1, val_limit=200,
                      checkpoint_every=1000, conv_autotune=True)
    return Trainer(_conv_model(), digits, cfg, folder, callbacks)


def test_kernel_choices_are_saved_and_a_resumed_run_is_exact(tmp_path: Path, digits: vaecore.Dataset) -> None:
    holder: dict[str, Trainer] = {}

    def stop_at_17(record: dict) -> None:
        if record.get("kind") == "step" and record["step"] >= 17:
            holder["t"].stop()

    part = holder["t"] = _run(tmp_path / "part", digits, [stop_at_17])
    assert part.fit().status == "stopped"
    _, meta = rf.load_checkpoint(tmp_path / "part")
    recorded = meta["conv_kernels"]
    assert recorded and all(any(k.endswith("/train") for k in t) for t in recorded.values())

    resumed = Trainer.resume(tmp_path / "part")
    assert conv_autotune.choices(resumed.model) == recorded, "the resumed run computes with the same kernels"
    resumed.fit()
    full = _run(tmp_path / "full", digits)
    conv_autotune.load_choices(full.model, recorded)  # the uninterrupted run with the same choices
    full.fit()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"

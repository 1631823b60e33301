"""Shape, gradient and support checks for the named encoder/decoder architectures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vaecore.components.nets import (
    ARCHITECTURES,
    PAPER_MLPS,
    GatedLinear,
    build_decoder,
    build_encoder,
    check_supported,
    count_parameters,
)

LATENT = 16
BATCH = 2
SHAPES = [(1, 28, 28), (1, 8, 8), (3, 32, 32)]
UNSUPPORTED = {
    "sigma-conv": [(1, 4, 4), (1, 28, 7)],
    "arelbo-conv": [(1, 10, 10), (3, 28, 30)],
    "pythae-conv": [(1, 8, 8), (1, 48, 48), (1, 28, 32)],
    "pythae-resnet": [(1, 8, 8), (1, 48, 48), (3, 64, 32)],
    "mlp": [],
    **{name: [] for name in PAPER_MLPS},
    "sigma-conv-wide": [(1, 4, 4), (3, 28, 7)],
    "burgess-conv": [(1, 8, 8), (3, 15, 28)],
    "locatello-conv": [(1, 8, 8), (1, 28, 12)],
}


@pytest.fixture(autouse=True)
def _light_torch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _supported(arch: str, shape: tuple[int, int, int]) -> bool:
    try:
        check_supported(arch, shape)
    except ValueError:
        return False
    return True


CASES = [(a, s) for a in ARCHITECTURES for s in SHAPES if _supported(a, s)]


def test_expected_support_matrix():
    assert "sigma-conv" in ARCHITECTURES and all(isinstance(v, str) and v for v in ARCHITECTURES.values())
    expected = {
        ("sigma-conv", (1, 28, 28)), ("sigma-conv", (1, 8, 8)), ("sigma-conv", (3, 32, 32)),
        ("arelbo-conv", (1, 28, 28)), ("arelbo-conv", (1, 8, 8)), ("arelbo-conv", (3, 32, 32)),
        ("pythae-conv", (1, 28, 28)), ("pythae-conv", (3, 32, 32)),
        ("pythae-resnet", (1, 28, 28)), ("pythae-resnet", (3, 32, 32)),
        ("mlp", (1, 28, 28)), ("mlp", (1, 8, 8)), ("mlp", (3, 32, 32)),
        *((name, shape) for name in PAPER_MLPS for shape in SHAPES),
        ("sigma-conv-wide", (1, 28, 28)), ("sigma-conv-wide", (1, 8, 8)), ("sigma-conv-wide", (3, 32, 32)),
        ("burgess-conv", (1, 28, 28)), ("burgess-conv", (3, 32, 32)),
        ("locatello-conv", (1, 28, 28)), ("locatello-conv", (3, 32, 32)),
    }
    assert set(CASES) == expected


@pytest.mark.parametrize("out_channels", [1, 2, 256])
@pytest.mark.parametrize(("arch", "shape"), CASES, ids=lambda v: str(v))
def test_shapes_and_gradients(arch: str, shape: tuple[int, int, int], out_channels: int):
    enc = build_encoder(arch, shape, LATENT)
    dec = build_decoder(arch, shape, LATENT, out_channels)
    x = torch.rand(BATCH, *shape)

    h = enc(x)
    assert h.shape == (BATCH, 2 * LATENT)
    mu, logvar = h.chunk(2, dim=1)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    params = dec(z)
    assert params.shape == (BATCH, out_channels, *shape[1:])
    assert params.dtype == torch.float32

    (params.square().mean() + h.square().mean()).backward()
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None, f"{arch}: no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"{arch}: non-finite gradient for {name}"


@pytest.mark.parametrize(("arch", "shape"), CASES, ids=lambda v: str(v))
def test_custom_out_features_and_eval_mode(arch: str, shape: tuple[int, int, int]):
    enc = build_encoder(arch, shape, LATENT, out_features=7).eval()
    dec = build_decoder(arch, shape, LATENT, 1).eval()
    with torch.no_grad():
        assert enc(torch.rand(1, *shape)).shape == (1, 7)
        assert dec(torch.randn(1, LATENT)).shape == (1, 1, *shape[1:])


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_decoder_has_no_output_activation(arch: str):
    shape = next(s for a, s in CASES if a == arch)
    dec = build_decoder(arch, shape, LATENT, 2)
    assert not any(isinstance(m, (nn.Sigmoid, nn.Softmax)) for m in dec.modules())  # tanh hidden layers are fine
    last = [m for m in dec.children() if not isinstance(m, (nn.Unflatten, nn.Flatten))][-1]
    assert isinstance(last, (nn.Linear, nn.ConvTranspose2d, nn.Conv2d))


@pytest.mark.parametrize("shape", [(1, 9, 13), (2, 31, 8), (1, 15, 15), (3, 64, 48)])
def test_sigma_conv_reproduces_odd_sizes(shape: tuple[int, int, int]):
    dec = build_decoder("sigma-conv", shape, LATENT, 3)
    assert dec(torch.randn(BATCH, LATENT)).shape == (BATCH, 3, *shape[1:])
    assert build_encoder("sigma-conv", shape, LATENT)(torch.rand(BATCH, *shape)).shape == (BATCH, 2 * LATENT)


@pytest.mark.parametrize(
    ("arch", "shape"), [(a, s) for a, shapes in UNSUPPORTED.items() for s in shapes], ids=lambda v: str(v)
)
def test_unsupported_shapes_raise(arch: str, shape: tuple[int, int, int]):
    for call in (
        lambda: check_supported(arch, shape),
        lambda: build_encoder(arch, shape, LATENT),
        lambda: build_decoder(arch, shape, LATENT, 1),
    ):
        with pytest.raises(ValueError, match=arch) as info:
            call()
        assert "instead" in str(info.value)


def test_unknown_arch_lists_known_names():
    with pytest.raises(ValueError, match="resnet") as info:
        build_encoder("resnet", (1, 28, 28), LATENT)
    for name in ARCHITECTURES:
        assert name in str(info.value)
    with pytest.raises(ValueError):
        build_decoder("resnet", (1, 28, 28), LATENT, 1)


@pytest.mark.parametrize("bad", [(28, 28), (1, 0, 28), (1, 28, 28, 1)])
def test_bad_shape_rejected(bad):
    with pytest.raises(ValueError):
        check_supported("mlp", bad)


def test_encoder_rejects_wrong_input_shape():
    enc = build_encoder("sigma-conv", (1, 28, 28), LATENT)
    with pytest.raises(ValueError, match="sigma-conv"):
        enc(torch.rand(BATCH, 1, 32, 32))


def test_parameter_counts_28x28():
    counts = {}
    for arch in ARCHITECTURES:
        enc = build_encoder(arch, (1, 28, 28), LATENT)
        dec = build_decoder(arch, (1, 28, 28), LATENT, 1)
        counts[arch] = (count_parameters(enc), count_parameters(dec))
        print(f"{arch}: encoder {counts[arch][0]:,} + decoder {counts[arch][1]:,} = {sum(counts[arch]):,}")
    assert 100_000 <= sum(counts["sigma-conv"]) <= 600_000
    assert sum(counts["pythae-conv"]) > 10_000_000


def test_iwae_mlp_is_the_papers_net():
    """784-200-200-2·50 tanh encoder and 50-200-200-784 decoder (Burda et al. §5), Glorot-uniform, zero biases."""
    enc = build_encoder("iwae-mlp", (1, 28, 28), 50)
    dec = build_decoder("iwae-mlp", (1, 28, 28), 50, 1)
    assert count_parameters(enc) == 784 * 200 + 200 + 200 * 200 + 200 + 200 * 100 + 100
    assert count_parameters(dec) == 50 * 200 + 200 + 200 * 200 + 200 + 200 * 784 + 784
    assert sum(isinstance(m, nn.Tanh) for m in enc.modules()) == 2 == sum(isinstance(m, nn.Tanh) for m in dec.modules())
    for lin in [m for m in [*enc.modules(), *dec.modules()] if isinstance(m, nn.Linear)]:
        bound = (6.0 / (lin.in_features + lin.out_features)) ** 0.5
        assert float(lin.weight.abs().max()) <= bound and float(lin.weight.abs().max()) > 0.9 * bound
        assert not lin.bias.any()


def test_gated_layer_is_h_times_sigmoid_g():
    layer = GatedLinear(5, 3)
    x = torch.randn(4, 5)
    assert torch.allclose(layer(x), layer.h(x) * torch.sigmoid(layer.g(x)))
    enc = build_encoder("vamp-mlp", (1, 28, 28), 40)
    assert sum(isinstance(m, GatedLinear) for m in enc.modules()) == 2


def test_paper_decoders_mirror_the_encoders_unless_the_paper_says_otherwise():
    def widths(hidden: tuple[int, ...], act: str) -> list[int]:
        return [w for w in hidden for _ in ((0, 1) if act == "gated" else (0,))]  # two linear maps per gated layer

    activations = (nn.Tanh, nn.ReLU, nn.Softplus)
    for name, spec in PAPER_MLPS.items():
        enc, dec = build_encoder(name, (1, 28, 28), 8), build_decoder(name, (1, 28, 28), 8, 1)
        assert [m.out_features for m in enc.modules() if isinstance(m, nn.Linear)][:-1] == widths(spec.hidden,
                                                                                                   spec.act), name
        dec_act = spec.decoder_act or spec.act
        assert [m.out_features for m in dec.modules() if isinstance(m, nn.Linear)][:-1] == widths(
            spec.decoder_hidden or spec.hidden[::-1], dec_act), name
        for net, act in ((enc, spec.act), (dec, dec_act)):
            if act != "gated":
                assert {type(m).__name__.lower() for m in net.modules() if isinstance(m, activations)} == {act}, name
    chen = PAPER_MLPS["chen-mlp"]  # Chen et al. 2018's dSprites MLP: 2 x 1200 ReLU encoder, 3 x 1200 tanh decoder
    assert (chen.hidden, chen.act, chen.decoder_hidden, chen.decoder_act) == ((1200, 1200), "relu",
                                                                              (1200, 1200, 1200), "tanh")


BUILT_IN = [a for a in ARCHITECTURES if ":" not in a]


@pytest.mark.parametrize("arch", BUILT_IN)
@pytest.mark.parametrize("side", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_architecture_at_28_32_64_px_grey_and_colour(arch: str, side: int, channels: int):
    shape = (channels, side, side)
    check_supported(arch, shape)
    enc, dec = build_encoder(arch, shape, 10).eval(), build_decoder(arch, shape, 10, 2 * channels).eval()
    with torch.no_grad():
        assert enc(torch.rand(2, *shape)).shape == (2, 20)
        assert dec(torch.randn(2, 10)).shape == (2, 2 * channels, side, side)


def test_disentanglement_nets_are_the_papers_layouts():
    enc = build_encoder("locatello-conv", (1, 64, 64), 10)
    convs = [m for m in enc if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in convs] == [(c, (4, 4), (2, 2)) for c in (32, 32, 64, 64)]
    assert [m.out_features for m in enc if isinstance(m, nn.Linear)] == [256, 20]
    sizes, x = [], torch.zeros(1, 1, 64, 64)
    for m in enc:
        x = m(x)
        if isinstance(m, nn.Conv2d):
            sizes.append(x.shape[-1])
    assert sizes == [32, 16, 8, 4]
    dec = build_decoder("locatello-conv", (1, 64, 64), 10, 1)
    assert [m.out_features for m in dec if isinstance(m, nn.Linear)] == [256, 64 * 4 * 4]
    assert [m.out_channels for m in dec if isinstance(m, nn.ConvTranspose2d)] == [64, 32, 32, 1]
    burgess = build_encoder("burgess-conv", (1, 64, 64), 10)
    assert [m.out_channels for m in burgess if isinstance(m, nn.Conv2d)] == [32] * 4
    assert [m.out_features for m in burgess if isinstance(m, nn.Linear)] == [256, 256, 20]
    wide = build_encoder("sigma-conv-wide", (3, 32, 32), 20)
    assert [m.out_channels for m in wide if isinstance(m, nn.Conv2d)] == [128, 256, 512]


def test_chen_mlp_is_the_beta_tc_vae_dsprites_network():
    """Chen et al.'s dSprites MLP (Pythae's β-TC-VAE reproduction): 2 × 1200 ReLU encoder, 3 × 1200 tanh decoder."""
    enc = build_encoder("chen-mlp", (1, 64, 64), 10)
    assert [m.out_features for m in enc if isinstance(m, nn.Linear)] == [1200, 1200, 20]
    assert sum(isinstance(m, nn.ReLU) for m in enc) == 2 and not any(isinstance(m, nn.Tanh) for m in enc)
    dec = build_decoder("chen-mlp", (1, 64, 64), 10, 1)
    assert [m.out_features for m in dec if isinstance(m, nn.Linear)] == [1200, 1200, 1200, 64 * 64]
    assert sum(isinstance(m, nn.Tanh) for m in dec) == 3 and not any(isinstance(m, nn.ReLU) for m in dec)
    with torch.no_grad():
        assert dec(torch.randn(2, 10)).shape == (2, 1, 64, 64)

"""Encoder and decoder architectures, built by name.

Every encoder maps images ``(B, C, H, W)`` to ``(B, out_features)`` (by default ``2 * latent_dim``:
``mu`` and ``logvar`` concatenated). Every decoder maps latents ``(B, latent_dim)`` to raw
likelihood parameters ``(B, out_channels, H, W)`` with no output activation, because the likelihood
decides how to squash them (sigmoid, softmax over 256 levels, ...). The reference layouts follow the
papers' appendices (each description in ARCHITECTURES names its source); where a paper fixes the image
size, other sizes are refused with a ValueError that says which architecture to use instead.

`register_architecture` adds a user's own network by name, without pickling: a saved config names
the architecture as ``"<module>:<name>"``, so loading it in a fresh process says which module to
import (the one that registers it) when it is not registered yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from vaecore.components.benchmark_nets import RESNET_SIZES, celeba_conv_decoder, resnet_decoder, resnet_encoder
from vaecore.components.disentangle_nets import DISENTANGLE_NETS, disentangle_decoder, disentangle_encoder
from vaecore.components.disentangle_nets import MIN_SIZE as _DISENT_MIN_SIZE

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "PAPER_MLPS",
    "Decoder",
    "Encoder",
    "build_decoder",
    "build_encoder",
    "check_supported",
    "count_parameters",
    "register_architecture",
]

DEFAULT_ARCH = "sigma-conv"

ARCHITECTURES: dict[str, str] = {
    "sigma-conv": "σ-VAE small conv net: 3 stride-2 convs (32-64-128) + linear; any H, W >= 8 (default)",
    "arelbo-conv": "AR-ELBO MNIST net (App. J): 5x5 convs 64-128, FC1024 + BatchNorm; H, W divisible by 4",
    "pythae-conv": "Pythae ConvNet benchmark: 4 convs 128-1024 + BatchNorm (~17M params); 28x28 (MNIST), "
                   "32x32 (CIFAR-10) or 64x64 (CelebA)",
    "pythae-resnet": "Pythae ResNet benchmark: strided convs + 2 residual blocks (128 ch); 28x28 (MNIST), "
                     "32x32 (CIFAR-10) or 64x64 (CelebA)",
    "mlp": "fully connected 512-256 hidden units, ReLU; any image shape",
    "sigma-conv-wide": "σ-VAE conv net as on CIFAR (App. B): 3 stride-2 convs starting at 128 channels (128-256-512) "
                       "+ linear; any H, W >= 8",
    "burgess-conv": "Burgess et al. 2018 dSprites net: 4 convs of 32 (4x4, stride 2), 2 FC of 256; any H, W >= 16",
    "locatello-conv": "Locatello et al. 2019 (disentanglement_lib) net: convs 32-32-64-64 (4x4, stride 2), FC 256; "
                      "any H, W >= 16",
}

_SIGMA_CHANNELS = (32, 64, 128)
_SIGMA_WIDE = (128, 256, 512)
_SIGMA_MIN_SIZE = 8
_PYTHAE_SIZES = (28, 32, 64)

Shape = tuple[int, int, int]


class Encoder(nn.Sequential):
    """Layer stack mapping ``(B, C, H, W)`` images to ``(B, out_features)``; checks the input shape."""

    def __init__(self, arch: str, input_shape: Shape, out_features: int, layers: Sequence[nn.Module]):
        super().__init__(*layers)
        self.arch = arch
        self.input_shape = input_shape
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            c, h, w = self.input_shape
            raise ValueError(f"{self.arch!r} encoder expects inputs (B, {c}, {h}, {w}), got {tuple(x.shape)}")
        return super().forward(x)


class Decoder(nn.Sequential):
    """Layer stack mapping ``(B, latent_dim)`` latents to raw parameters ``(B, out_channels, H, W)``."""

    def __init__(self, arch: str, input_shape: Shape, latent_dim: int, out_channels: int,
                 layers: Sequence[nn.Module]):
        super().__init__(*layers)
        self.arch = arch
        self.input_shape = input_shape
        self.latent_dim = latent_dim
        self.out_channels = out_channels


def _normalise_shape(input_shape: Sequence[int]) -> Shape:
    """Validate an image shape ``(C, H, W)`` of positive ints, returned as a tuple."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    return shape  # type: ignore[return-value]


def _check_arch(arch: str) -> None:
    if arch in ARCHITECTURES:
        return
    if ":" in arch:
        module = arch.split(":", 1)[0]
        how = ("it was registered by a script (__main__): move its builders into an importable module"
               if module == "__main__" else f"`import {module}` (the module that registers it) first")
        raise ValueError(f"architecture {arch!r} is not registered in this process; {how}")
    known = "; ".join(f"{name!r}: {desc}" for name, desc in ARCHITECTURES.items())
    near = [name for name in _CUSTOM if name.split(":", 1)[1] == arch]
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ValueError(f"unknown architecture {arch!r}{hint}; known architectures: {known}")


def check_supported(arch: str, input_shape: Sequence[int]) -> None:
    """Raise ValueError unless ``arch`` can be built for images of shape ``(C, H, W)``.

    The message names the architecture, the shapes it supports and what to use instead, so the app
    can show it to the user as is.
    """
    _check_arch(arch)
    c, h, w = _normalise_shape(input_shape)
    fallback = "use 'sigma-conv' (any H, W >= 8) or 'mlp' (any shape) instead"
    if arch in ("sigma-conv", "sigma-conv-wide") and (h < _SIGMA_MIN_SIZE or w < _SIGMA_MIN_SIZE):
        raise ValueError(
            f"{arch!r} needs H and W >= {_SIGMA_MIN_SIZE}, got shape {(c, h, w)}; use 'mlp' instead"
        )
    if arch in DISENTANGLE_NETS and (h < _DISENT_MIN_SIZE or w < _DISENT_MIN_SIZE):
        raise ValueError(f"{arch!r} needs H and W >= {_DISENT_MIN_SIZE}, got shape {(c, h, w)}; {fallback}")
    if arch == "arelbo-conv" and (h % 4 or w % 4):
        raise ValueError(
            f"'arelbo-conv' needs H and W divisible by 4 (e.g. 28x28, 32x32), got shape {(c, h, w)};"
            f" {fallback}"
        )
    if arch == "pythae-conv" and not (h == w and h in _PYTHAE_SIZES):
        raise ValueError(
            f"'pythae-conv' supports only 28x28 (MNIST layout), 32x32 (CIFAR layout) and 64x64 (CelebA layout)"
            f" images, got shape {(c, h, w)}; {fallback}"
        )
    if arch == "pythae-resnet" and not (h == w and h in RESNET_SIZES):
        raise ValueError(
            f"'pythae-resnet' supports only 28x28 (MNIST layout), 32x32 (CIFAR layout) and 64x64 (CelebA layout)"
            f" images, got shape {(c, h, w)}; {fallback}"
        )


def _conv_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


def _sigma_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """Feature-map sizes of the σ-VAE encoder (3x3, stride 2, padding 1 gives ceil(n / 2))."""
    sizes = [(h, w)]
    for _ in _SIGMA_CHANNELS:
        ph, pw = sizes[-1]
        sizes.append((_conv_out(ph, 3, 2, 1), _conv_out(pw, 3, 2, 1)))
    return sizes


def _sigma_encoder(shape: Shape, out_features: int, widths: tuple[int, ...] = _SIGMA_CHANNELS) -> list[nn.Module]:
    c, h, w = shape
    layers: list[nn.Module] = []
    in_ch = c
    for ch in widths:
        layers += [nn.Conv2d(in_ch, ch, 3, stride=2, padding=1), nn.ReLU()]
        in_ch = ch
    fh, fw = _sigma_sizes(h, w)[-1]
    return layers + [nn.Flatten(), nn.Linear(in_ch * fh * fw, out_features)]


def _sigma_decoder(shape: Shape, latent_dim: int, out_channels: int,
                   widths: tuple[int, ...] = _SIGMA_CHANNELS) -> list[nn.Module]:
    """Mirror of the encoder; per-layer output_padding reproduces each recorded size exactly."""
    _, h, w = shape
    sizes = _sigma_sizes(h, w)
    fh, fw = sizes[-1]
    top = widths[-1]
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, top * fh * fw), nn.ReLU(), nn.Unflatten(1, (top, fh, fw)),
    ]
    channels = list(reversed(widths[:-1])) + [out_channels]
    in_ch = top
    for i, ch in enumerate(channels):
        (sh, sw), (th, tw) = sizes[-1 - i], sizes[-2 - i]
        pad = (th - (2 * sh - 1), tw - (2 * sw - 1))
        layers.append(nn.ConvTranspose2d(in_ch, ch, 3, stride=2, padding=1, output_padding=pad))
        if i < len(channels) - 1:
            layers.append(nn.ReLU())
        in_ch = ch
    return layers


def _arelbo_encoder(shape: Shape, out_features: int) -> list[nn.Module]:
    c, h, w = shape
    return [
        nn.Conv2d(c, 64, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(64, 128, 5, stride=2, padding=2), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(128 * (h // 4) * (w // 4), 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, out_features),
    ]


def _arelbo_decoder(shape: Shape, latent_dim: int, out_channels: int) -> list[nn.Module]:
    """InfoGAN-style generator: the 5x5 ConvT doubles the size, the last 4x4 ConvT doubles it again."""
    _, h, w = shape
    fh, fw = h // 4, w // 4
    return [
        nn.Linear(latent_dim, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, 128 * fh * fw), nn.BatchNorm1d(128 * fh * fw), nn.ReLU(),
        nn.Unflatten(1, (128, fh, fw)),
        nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, out_channels, 4, stride=2, padding=1),
    ]


def _pythae_encoder(shape: Shape, out_features: int) -> list[nn.Module]:
    c, h, w = shape
    layers: list[nn.Module] = []
    in_ch = c
    for ch in (128, 256, 512, 1024):
        layers += [nn.Conv2d(in_ch, ch, 4, stride=2, padding=1), nn.BatchNorm2d(ch), nn.ReLU()]
        in_ch = ch
        h, w = _conv_out(h, 4, 2, 1), _conv_out(w, 4, 2, 1)
    return layers + [nn.Flatten(), nn.Linear(1024 * h * w, out_features)]


def _pythae_decoder(shape: Shape, latent_dim: int, out_channels: int) -> list[nn.Module]:
    """Pythae's ``Decoder_Conv_AE_MNIST`` (28x28), ``_CIFAR`` (32x32) or ``_CELEBA`` (64x64), minus the sigmoid."""
    if shape[1] == 64:
        return celeba_conv_decoder(latent_dim, out_channels)
    if shape[1] == 28:
        return [
            nn.Linear(latent_dim, 1024 * 4 * 4), nn.Unflatten(1, (1024, 4, 4)),
            nn.ConvTranspose2d(1024, 512, 3, stride=2, padding=1), nn.BatchNorm2d(512), nn.ReLU(),
            nn.ConvTranspose2d(512, 256, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(256), nn.ReLU(),
            nn.ConvTranspose2d(256, out_channels, 3, stride=2, padding=1, output_padding=1),
        ]
    return [
        nn.Linear(latent_dim, 1024 * 8 * 8), nn.Unflatten(1, (1024, 8, 8)),
        nn.ConvTranspose2d(1024, 512, 4, stride=2, padding=1), nn.BatchNorm2d(512), nn.ReLU(),
        nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(256), nn.ReLU(),
        nn.ConvTranspose2d(256, out_channels, 4, stride=1, padding=2),
    ]


def _mlp_hidden(shape: Shape) -> tuple[int, int]:
    """Hidden widths 512 and 256, narrowed for tiny inputs so the net does not dwarf the data."""
    d = shape[0] * shape[1] * shape[2]
    return min(512, 4 * d), min(256, 2 * d)


def _mlp_encoder(shape: Shape, out_features: int) -> list[nn.Module]:
    h1, h2 = _mlp_hidden(shape)
    d = shape[0] * shape[1] * shape[2]
    return [
        nn.Flatten(),
        nn.Linear(d, h1), nn.ReLU(),
        nn.Linear(h1, h2), nn.ReLU(),
        nn.Linear(h2, out_features),
    ]


def _mlp_decoder(shape: Shape, latent_dim: int, out_channels: int) -> list[nn.Module]:
    h1, h2 = _mlp_hidden(shape)
    _, h, w = shape
    return [
        nn.Linear(latent_dim, h2), nn.ReLU(),
        nn.Linear(h2, h1), nn.ReLU(),
        nn.Linear(h1, out_channels * h * w),
        nn.Unflatten(1, (out_channels, h, w)),
    ]


@dataclass(frozen=True)
class PaperMLP:
    """A fully connected net of a paper's likelihood experiments: `hidden` widths of the encoder (the decoder
    mirrors them), the activation `act` ("tanh", "relu", "softplus", or "gated": h(x)·sigmoid(g(x)) as in
    Tomczak & Welling's VampPrior nets) and the weight initialisation `init` ("torch": PyTorch's default;
    "glorot": Glorot-uniform weights and zero biases; "he": He-normal weights, default biases)."""

    hidden: tuple[int, ...]
    act: str
    init: str
    description: str
    decoder_hidden: tuple[int, ...] | None = None  # the decoder's widths (from the latent) when it is no mirror
    decoder_act: str | None = None


PAPER_MLPS: dict[str, PaperMLP] = {
    "iwae-mlp": PaperMLP((200, 200), "tanh", "glorot",
                         "IWAE paper's one-stochastic-layer MLP (Burda et al. 2016, §5): 2 x 200 tanh each way, "
                         "Glorot-uniform init; any image shape"),
    "vae-mlp-400": PaperMLP((400,), "relu", "torch",
                            "one hidden layer of 400 ReLU each way (Pythae's VAE reproduction, after Rezende & "
                            "Mohamed 2015); any image shape"),
    "vamp-mlp": PaperMLP((300, 300), "gated", "he",
                         "2 x 300 gated dense layers each way, He-normal init (VampPrior paper; Pythae's VAMP "
                         "reproduction); any image shape"),
    "hvae-mlp": PaperMLP((300,), "softplus", "torch",
                         "one hidden layer of 300 softplus each way (Pythae's HVAE reproduction); any image shape"),
    "svae-mlp": PaperMLP((256, 128), "relu", "torch",
                         "256-128 ReLU encoder, 128-256 decoder (S-VAE paper's code; Pythae's SVAE reproduction); "
                         "any image shape"),
    "pvae-mlp": PaperMLP((600,), "relu", "torch",
                         "one hidden layer of 600 ReLU each way (Pythae's Poincaré VAE reproduction, whose first "
                         "decoder layer is a gyroplane layer; here a linear layer); any image shape"),
    "chen-mlp": PaperMLP((1200, 1200), "relu", "torch",
                         "β-TC-VAE dSprites MLP (Chen et al. 2018; Pythae's reproduction): 2 x 1200 ReLU encoder, "
                         "3 x 1200 tanh decoder; any image shape", decoder_hidden=(1200, 1200, 1200),
                         decoder_act="tanh"),
}
ARCHITECTURES.update({name: spec.description for name, spec in PAPER_MLPS.items()})


class GatedLinear(nn.Module):
    """h(x)·sigmoid(g(x)) with two linear maps h and g (the gated dense layer of the VampPrior nets)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.h = nn.Linear(n_in, n_out)
        self.g = nn.Linear(n_in, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


def _paper_layers(spec: PaperMLP, widths: Sequence[int]) -> list[nn.Module]:
    """Hidden layers through `widths` (first = input size) then the linear output layer, initialised per spec."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-2], widths[1:-1], strict=True):
        if spec.act == "gated":
            layers.append(GatedLinear(n_in, n_out))
        else:
            layers += [nn.Linear(n_in, n_out), {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}[spec.act]()]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    for module in layers:
        for lin in [m for m in module.modules() if isinstance(m, nn.Linear)]:
            if spec.init == "glorot":
                nn.init.xavier_uniform_(lin.weight)
                nn.init.zeros_(lin.bias)
            elif spec.init == "he":
                nn.init.normal_(lin.weight, 0.0, (2.0 / lin.in_features) ** 0.5)
    return layers


def _paper_encoder(name: str) -> Callable[[Shape, int], list[nn.Module]]:
    spec = PAPER_MLPS[name]

    def build(shape: Shape, out_features: int) -> list[nn.Module]:
        d = shape[0] * shape[1] * shape[2]
        return [nn.Flatten(), *_paper_layers(spec, (d, *spec.hidden, out_features))]
    return build


def _paper_decoder(name: str) -> Callable[[Shape, int, int], list[nn.Module]]:
    spec = PAPER_MLPS[name]

    def build(shape: Shape, latent_dim: int, out_channels: int) -> list[nn.Module]:
        _, h, w = shape
        hidden = spec.decoder_hidden or tuple(reversed(spec.hidden))
        layers = _paper_layers(replace(spec, act=spec.decoder_act or spec.act), (latent_dim, *hidden,
                                                                                   out_channels * h * w))
        return [*layers, nn.Unflatten(1, (out_channels, h, w))]
    return build


_ENCODERS: dict[str, Callable[[Shape, int], list[nn.Module]]] = {
    "sigma-conv": _sigma_encoder,
    "arelbo-conv": _arelbo_encoder,
    "pythae-conv": _pythae_encoder,
    "pythae-resnet": resnet_encoder,
    "mlp": _mlp_encoder,
    "sigma-conv-wide": lambda shape, out: _sigma_encoder(shape, out, _SIGMA_WIDE),
    **{name: _paper_encoder(name) for name in PAPER_MLPS},
    **{name: (lambda shape, out, n=name: disentangle_encoder(n, shape, out)) for name in DISENTANGLE_NETS},
}

_DECODERS: dict[str, Callable[[Shape, int, int], list[nn.Module]]] = {
    "sigma-conv": _sigma_decoder,
    "arelbo-conv": _arelbo_decoder,
    "pythae-conv": _pythae_decoder,
    "pythae-resnet": resnet_decoder,
    "mlp": _mlp_decoder,
    "sigma-conv-wide": lambda shape, latent, out: _sigma_decoder(shape, latent, out, _SIGMA_WIDE),
    **{name: _paper_decoder(name) for name in PAPER_MLPS},
    **{name: (lambda shape, latent, out, n=name: disentangle_decoder(n, shape, latent, out))
       for name in DISENTANGLE_NETS},
}
_CUSTOM: dict[str, str] = {}
"""Registered user architectures: qualified name → the module that registered it."""


def _positive(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def build_encoder(arch: str, input_shape: Sequence[int], latent_dim: int,
                  out_features: int | None = None) -> Encoder:
    """Build the encoder ``(B, C, H, W) -> (B, out_features)``.

    ``out_features`` defaults to ``2 * latent_dim`` (``mu`` and ``logvar`` concatenated).
    """
    check_supported(arch, input_shape)
    shape = _normalise_shape(input_shape)
    latent_dim = _positive("latent_dim", latent_dim)
    out = 2 * latent_dim if out_features is None else _positive("out_features", out_features)
    enc = Encoder(arch, shape, out, _ENCODERS[arch](shape, out))
    if arch in _CUSTOM:
        _check_output(arch, "encoder", enc, torch.zeros(2, *shape), (2, out))
    return enc


def build_decoder(arch: str, input_shape: Sequence[int], latent_dim: int, out_channels: int) -> Decoder:
    """Build the decoder ``(B, latent_dim) -> (B, out_channels, H, W)`` of raw parameters (no activation)."""
    check_supported(arch, input_shape)
    shape = _normalise_shape(input_shape)
    latent_dim = _positive("latent_dim", latent_dim)
    out_channels = _positive("out_channels", out_channels)
    dec = Decoder(arch, shape, latent_dim, out_channels, _DECODERS[arch](shape, latent_dim, out_channels))
    if arch in _CUSTOM:
        _check_output(arch, "decoder", dec, torch.zeros(2, latent_dim), (2, out_channels, *shape[1:]))
    return dec


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)



EncoderBuilder = Callable[[Shape, int], nn.Module]
DecoderBuilder = Callable[[Shape, int, int], nn.Module]


def register_architecture(name: str, build_encoder: EncoderBuilder, build_decoder: DecoderBuilder, *,
                          description: str = "", module: str | None = None) -> str:
    """Register a user network; returns the name to give as `arch` (``"<module>:<name>"``).

    `build_encoder(input_shape, out_features)` returns a module mapping ``(B, C, H, W)`` images to
    ``(B, out_features)``; `build_decoder(input_shape, latent_dim, out_channels)` one mapping
    ``(B, latent_dim)`` to raw likelihood parameters ``(B, out_channels, H, W)``. Call it at import of
    the module that defines them (`module`, by default `build_encoder`'s), so a process that imports
    that module can load saved models.
    """
    if not callable(build_encoder) or not callable(build_decoder):
        raise TypeError("register_architecture needs two callables: build_encoder and build_decoder")
    module = module or getattr(build_encoder, "__module__", None) or "__main__"
    key = name if ":" in name else f"{module}:{name}"
    local = key.split(":", 1)[1]
    if not local or local in ARCHITECTURES or key in ARCHITECTURES and key not in _CUSTOM:
        raise ValueError(f"architecture name {name!r} is empty or taken by a built-in architecture")
    ARCHITECTURES[key] = description or f"user architecture from {key.split(':', 1)[0]}"
    _ENCODERS[key] = lambda shape, out: [build_encoder(shape, out)]
    _DECODERS[key] = lambda shape, latent, channels: [build_decoder(shape, latent, channels)]
    _CUSTOM[key] = key.split(":", 1)[0]
    return key


def _check_output(arch: str, what: str, net: nn.Module, probe: Tensor, want: tuple[int, ...]) -> None:
    """A user network's output shape on a probe batch, checked once when it is built (eval mode, no grad)."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            got = tuple(net(probe).shape)
    finally:
        net.train(was_training)
    if got != want:
        raise ValueError(f"the {what} of architecture {arch!r} returns shape {got} for input {tuple(probe.shape)}; "
                         f"it must return {want}")

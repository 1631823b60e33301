"""The convolutional nets of the disentanglement literature, as layer lists for `nets.py`.

- `burgess-conv` (Burgess et al. 2018, "Understanding disentangling in β-VAE", App. A.1, used by
  Higgins et al.'s follow-ups on dSprites): 4 convs of 32 channels (4 × 4, stride 2), 2 fully connected
  layers of 256 units, then the latent layer; the decoder mirrors it.
- `locatello-conv` (Locatello et al. 2019, Table 1 of the appendix, disentanglement_lib's `conv_encoder`
  / `deconv_decoder`): convs of 32, 32, 64, 64 channels (4 × 4, stride 2), one fully connected layer of
  256 units, then the latent layer; decoder: 256 units, 64 · 4 · 4 units, transposed convs of 64, 32, 32
  and C channels.
ReLU everywhere; the decoders end without an activation (the likelihood squashes). Built for any
H, W >= 16 (each stride-2 conv floors the size; each transposed conv restores it with its own
output padding), so 64 × 64 dSprites, 32 × 32 and 28 × 28 images all fit.
"""

from __future__ import annotations

from torch import nn

__all__ = ["DISENTANGLE_NETS", "MIN_SIZE", "disentangle_decoder", "disentangle_encoder"]

DISENTANGLE_NETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "burgess-conv": ((32, 32, 32, 32), (256, 256)),
    "locatello-conv": ((32, 32, 64, 64), (256,)),
}
MIN_SIZE = 16


def _sizes(h: int, w: int) -> list[tuple[int, int]]:
    """Feature-map sizes after each 4 × 4, stride-2, padding-1 conv (floor(n / 2))."""
    sizes = [(h, w)]
    for _ in range(4):
        ph, pw = sizes[-1]
        sizes.append((ph // 2, pw // 2))
    return sizes


def disentangle_encoder(name: str, shape: tuple[int, int, int], out_features: int) -> list[nn.Module]:
    """Encoder layers of `name` for (C, H, W) images to `out_features`."""
    channels, hidden = DISENTANGLE_NETS[name]
    c, h, w = shape
    layers: list[nn.Module] = []
    in_ch = c
    for ch in channels:
        layers += [nn.Conv2d(in_ch, ch, 4, stride=2, padding=1), nn.ReLU()]
        in_ch = ch
    fh, fw = _sizes(h, w)[-1]
    layers.append(nn.Flatten())
    width = in_ch * fh * fw
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return layers + [nn.Linear(width, out_features)]


def disentangle_decoder(name: str, shape: tuple[int, int, int], latent_dim: int, out_channels: int
                        ) -> list[nn.Module]:
    """Decoder layers of `name` from `latent_dim` to raw parameters (out_channels, H, W)."""
    channels, hidden = DISENTANGLE_NETS[name]
    _, h, w = shape
    sizes = _sizes(h, w)
    fh, fw = sizes[-1]
    top = channels[-1]
    layers: list[nn.Module] = []
    width = latent_dim
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers += [nn.Linear(width, top * fh * fw), nn.ReLU(), nn.Unflatten(1, (top, fh, fw))]
    outs = [*reversed(channels[:-1]), out_channels]
    in_ch = top
    for i, ch in enumerate(outs):
        (sh, sw), (th, tw) = sizes[-1 - i], sizes[-2 - i]
        layers.append(nn.ConvTranspose2d(in_ch, ch, 4, stride=2, padding=1, output_padding=(th - 2 * sh, tw - 2 * sw)))
        if i < len(outs) - 1:
            layers.append(nn.ReLU())
        in_ch = ch
    return layers

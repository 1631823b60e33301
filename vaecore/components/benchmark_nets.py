"""Pythae's benchmark ResNets (Chadebec et al. 2022, Table 3) as layer lists for `nets.py`.

One layout per image size, as in Pythae's `nn/benchmarks/{mnist,cifar,celeba}/resnets.py`:
28×28 (MNIST), 32×32 (CIFAR-10) and 64×64 (CelebA), any number of channels. Each encoder is a
strided-conv stack, two residual blocks (ReLU → 3×3 conv to 32 channels → ReLU → 1×1 conv back,
added to the input) and one linear layer to the encoder outputs (Pythae's separate μ and log σ²
heads, concatenated). The decoders mirror them and end without an activation (the likelihood
squashes); the CelebA decoder keeps Pythae's sigmoid after its middle 5×5 up-convolution.
"""

from __future__ import annotations

from torch import Tensor, nn

RESNET_SIZES = (28, 32, 64)
_WIDTH = 128


class ResBlock(nn.Module):
    """x + conv1×1(relu(conv3×3(relu(x)))), the block of Pythae's benchmark ResNets."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, hidden, 3, 1, padding=1), nn.ReLU(),
                                   nn.Conv2d(hidden, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def _blocks() -> list[nn.Module]:
    return [ResBlock(_WIDTH, 32), ResBlock(_WIDTH, 32)]


def resnet_encoder(shape: tuple[int, int, int], out_features: int) -> list[nn.Module]:
    """Encoder layers for a (C, 28|32|64, same) image."""
    c, h, _ = shape
    head: list[nn.Module] = [nn.Conv2d(c, 64, 4, 2, padding=1), nn.Conv2d(64, _WIDTH, 4, 2, padding=1)]
    if h == 28:
        head.append(nn.Conv2d(_WIDTH, _WIDTH, 3, 2, padding=1))
        side = 4
    elif h == 32:
        head.append(nn.Conv2d(_WIDTH, _WIDTH, 3, 1, padding=1))
        side = 8
    else:
        head += [nn.Conv2d(_WIDTH, _WIDTH, 3, 2, padding=1), nn.Conv2d(_WIDTH, _WIDTH, 3, 2, padding=1)]
        side = 4
    return [*head, *_blocks(), nn.Flatten(), nn.Linear(_WIDTH * side * side, out_features)]


def resnet_decoder(shape: tuple[int, int, int], latent_dim: int, out_channels: int) -> list[nn.Module]:
    """Decoder layers to raw parameters (out_channels, 28|32|64, same)."""
    h = shape[1]
    if h == 28:
        return [nn.Linear(latent_dim, _WIDTH * 16), nn.Unflatten(1, (_WIDTH, 4, 4)),
                nn.ConvTranspose2d(_WIDTH, _WIDTH, 3, 2, padding=1), *_blocks(), nn.ReLU(),
                nn.ConvTranspose2d(_WIDTH, 64, 3, 2, padding=1, output_padding=1), nn.ReLU(),
                nn.ConvTranspose2d(64, out_channels, 3, 2, padding=1, output_padding=1)]
    if h == 32:
        return [nn.Linear(latent_dim, _WIDTH * 64), nn.Unflatten(1, (_WIDTH, 8, 8)), *_blocks(),
                nn.ConvTranspose2d(_WIDTH, 64, 4, 2, padding=1),
                nn.ConvTranspose2d(64, out_channels, 4, 2, padding=1)]
    return [nn.Linear(latent_dim, _WIDTH * 16), nn.Unflatten(1, (_WIDTH, 4, 4)),
            nn.ConvTranspose2d(_WIDTH, _WIDTH, 3, 2, padding=1), *_blocks(),
            nn.ConvTranspose2d(_WIDTH, _WIDTH, 5, 2, padding=1), nn.Sigmoid(),
            nn.ConvTranspose2d(_WIDTH, 64, 5, 2, padding=1, output_padding=1),
            nn.ConvTranspose2d(64, out_channels, 4, 2, padding=1)]


def celeba_conv_decoder(latent_dim: int, out_channels: int) -> list[nn.Module]:
    """Pythae's `Decoder_Conv_AE_CELEBA` (64×64), minus the output sigmoid."""
    return [
        nn.Linear(latent_dim, 1024 * 8 * 8), nn.Unflatten(1, (1024, 8, 8)),
        nn.ConvTranspose2d(1024, 512, 5, 2, padding=2), nn.BatchNorm2d(512), nn.ReLU(),
        nn.ConvTranspose2d(512, 256, 5, 2, padding=1), nn.BatchNorm2d(256), nn.ReLU(),
        nn.ConvTranspose2d(256, 128, 5, 2, padding=2, output_padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, out_channels, 5, 1, padding=1),
    ]

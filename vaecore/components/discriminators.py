"""Discriminators of the adversarial families: one on latent codes (AAE) and one on images whose
hidden layer doubles as the feature space of VAE-GAN's reconstruction term.

Both return logits (no sigmoid), to be scored with `binary_cross_entropy_with_logits`.
"""

from __future__ import annotations

from torch import Tensor, nn


def latent_discriminator(latent_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """MLP logit of "z is a prior draw": `layers` hidden layers of `hidden` units, LeakyReLU(0.2)."""
    mods: list[nn.Module] = []
    width = latent_dim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*mods, nn.Linear(width, 1))


class ImageDiscriminator(nn.Module):
    """Logit of "x is a data image", with `features(x)`: the activations of block `feature_layer`
    (1-based), the Dis_l of Larsen et al.

    `conv=True`: stride-2 3×3 convolutions of `channels`·2^i channels (any H, W ≥ 2^blocks), else
    fully connected blocks of `channels`·2^(blocks−1−i) units (any shape).
    """

    def __init__(self, input_shape: tuple[int, int, int], *, channels: int = 32, blocks: int = 3,
                 feature_layer: int = 2, conv: bool = True) -> None:
        super().__init__()
        if not 1 <= feature_layer <= blocks:
            raise ValueError(f"feature_layer must be in 1..{blocks}, got {feature_layer}")
        c, h, w = input_shape
        self.feature_layer = feature_layer
        mods: list[nn.Module] = []
        if conv:
            if min(h, w) < 2 ** blocks:
                raise ValueError(f"a {blocks}-block conv discriminator needs H, W >= {2 ** blocks}, got {h}×{w}")
            width = c
            for i in range(blocks):
                out = channels * 2 ** i
                mods.append(nn.Sequential(nn.Conv2d(width, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)))
                width, h, w = out, (h + 1) // 2, (w + 1) // 2
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * h * w, 1))
        else:
            width = c * h * w
            for i in range(blocks):
                out = channels * 2 ** (blocks - 1 - i)
                mods.append(nn.Sequential(nn.Flatten() if i == 0 else nn.Identity(), nn.Linear(width, out),
                                          nn.LeakyReLU(0.2)))
                width = out
            self.head = nn.Linear(width, 1)
        self.blocks = nn.ModuleList(mods)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(logit (B, 1), features of block `feature_layer` flattened (B, F))."""
        feats = None
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i == self.feature_layer:
                feats = x.flatten(1)
        return self.head(x), feats  # type: ignore[return-value]

"""A PixelCNN prior over the code maps of a vector-quantised model (VQ-VAE, HRQ-VAE): the standard
way to sample from a VQ-VAE (van den Oord et al., 2017, §3.2).

The codes of an image form a map (h, w·L): position (i, j)'s L levels side by side (L = 1 for the
VQ-VAE). The PixelCNN (van den Oord et al., 2016) models them autoregressively in raster order,
p(c) = Π_t p(c_t | c_<t), with masked convolutions (mask A on the input, mask B after) and a
K-way softmax per position; an HRQ code's coarse levels thus condition its fine ones. `fit`
trains it on the codes of the training images and keeps a copy of the model's codebooks, so
`sample_latents` returns the quantised latents, flattened as `model.embed` gives them, for
`model.decode`. It is small (32 channels, 3 residual blocks, 300 Adam steps by default) so it
fits in seconds on the 2×2 to 7×7 code maps of 8×8 and 28×28 images.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaecore.samplers.base import Progress, Sampler, model_fingerprint
from vaecore.utils import evaluating

ENCODE_BATCH = 1000


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only earlier positions in raster order (mask 'A' also hides the
    centre, mask 'B' lets it through)."""

    def __init__(self, mask: str, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        m = torch.ones(kernel, kernel)
        m[kernel // 2, kernel // 2 + (mask == "B"):] = 0
        m[kernel // 2 + 1:] = 0
        self.register_buffer("mask", m.view(1, 1, kernel, kernel))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), MaskedConv2d("B", channels, channels, 3), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class PixelCNN(nn.Module):
    """Logits (B, K, h, w) of each code given the codes before it, from code maps (B, h, w)."""

    def __init__(self, num_codes: int, hidden: int = 64, layers: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_codes, hidden)
        self.first = MaskedConv2d("A", hidden, hidden, 5)
        self.blocks = nn.Sequential(*[_Block(hidden) for _ in range(layers)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, num_codes, 1))

    def forward(self, codes: Tensor) -> Tensor:
        h = self.embed(codes).permute(0, 3, 1, 2)
        return self.head(self.blocks(self.first(h)))


class PixelCNNSampler(Sampler):
    """PixelCNN over a VQ model's code maps; samples are the quantised latents of the drawn codes."""

    name = "pixelcnn"
    description = "PixelCNN prior over the code maps of a vector-quantised model (vqvae, hrq-vae only)"

    def __init__(self, hidden: int = 32, layers: int = 3, steps: int = 300, batch_size: int = 64,
                 lr: float = 3e-3) -> None:
        super().__init__()
        for key, value in (("hidden", hidden), ("steps", steps), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if int(layers) < 0 or float(lr) <= 0:
            raise ValueError(f"need layers >= 0 and lr > 0, got {layers}, {lr}")
        self.hidden, self.layers, self.steps = int(hidden), int(layers), int(steps)
        self.batch_size, self.lr = int(batch_size), float(lr)
        self.codebooks = torch.zeros(0)
        self.map_shape = (0, 0)
        self.net: PixelCNN | None = None

    def settings(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "layers": self.layers, "steps": self.steps, "batch_size": self.batch_size,
                "lr": self.lr}

    @property
    def levels(self) -> int:
        return int(self.codebooks.shape[0])

    def fit(self, model: nn.Module, x_train: Tensor, *, seed: int = 0,
            progress: Progress | bool | None = None) -> PixelCNNSampler:
        """Train on the code maps of `x_train` under `model` (a VQ-VAE or HRQ-VAE)."""
        if not (hasattr(model, "code_map") and hasattr(model, "codebooks")):
            preset = getattr(getattr(model, "config", None), "preset", type(model).__name__)
            raise ValueError(f"the 'pixelcnn' sampler needs a vector-quantised model (vqvae, hrq-vae); {preset!r} "
                             "has continuous latents: use 'gmm', 'maf' or 'two-stage'")
        if x_train.shape[0] < 2:
            raise ValueError(f"the 'pixelcnn' sampler needs at least 2 training images, got {x_train.shape[0]}")
        with evaluating(model), torch.no_grad():
            codes = torch.cat([model.code_map(x_train[s:s + ENCODE_BATCH])
                               for s in range(0, x_train.shape[0], ENCODE_BATCH)])
            self.codebooks = model.codebooks().float()
        self.map_shape = (int(codes.shape[1]), int(codes.shape[2]))
        self.latent_dim = int(self.codebooks.shape[2]) * self.map_shape[0] * self.map_shape[1] // self.levels
        self.device = codes.device
        nll = self._train(codes, seed, progress if callable(progress) else None)
        self.fit_info = {"seed": int(seed), "n_train": int(x_train.shape[0]), "model": model_fingerprint(model),
                         "nll_per_map": nll}
        return self

    def fit_latents(self, z: Tensor, *, seed: int = 0, progress: Progress | bool | None = None) -> Sampler:
        raise ValueError("the 'pixelcnn' sampler is fitted on a VQ model's codes, not on latents: call "
                         "fit(model, x_train)")

    def _train(self, codes: Tensor, seed: int, progress: Progress | None) -> float:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = PixelCNN(int(self.codebooks.shape[1]), self.hidden, self.layers).to(codes.device)
        g = torch.Generator(device="cpu").manual_seed(seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.net.train()
        recent: list[float] = []
        for step in range(self.steps):
            idx = torch.randint(codes.shape[0], (min(self.batch_size, codes.shape[0]),), generator=g)
            batch = codes[idx.to(codes.device)]
            loss = F.cross_entropy(self.net(batch), batch, reduction="none").flatten(1).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            recent = (recent + [loss.item()])[-20:]
            if progress is not None and (step + 1) % 50 == 0:
                progress((step + 1) / self.steps, f"pixelcnn step {step + 1}/{self.steps} nll {recent[-1]:.2f}")
        self.net.eval()
        return sum(recent) / len(recent)

    def log_prob(self, codes: Tensor) -> Tensor:
        """log p(code map) per map (nats) of (B, h, w·L) codes."""
        if self.net is None:
            raise RuntimeError("the 'pixelcnn' sampler is not fitted")
        with torch.no_grad():
            codes = codes.to(self.device)
            return -F.cross_entropy(self.net(codes), codes, reduction="none").flatten(1).sum(1)

    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n code maps (n, h, w·L), drawn position by position in raster order."""
        if self.net is None:
            raise RuntimeError("the 'pixelcnn' sampler is not fitted: call fit(model, x_train) first")
        h, w = self.map_shape
        codes = torch.zeros(n, h, w, dtype=torch.long, device=self.device)
        with torch.no_grad():
            for i in range(h):
                for j in range(w):
                    # rows below i cannot reach row i through the masks, so the net sees rows ≤ i only
                    probs = F.softmax(self.net(codes[:, :i + 1])[:, :, i, j].float(), dim=1)
                    if generator is not None:
                        probs = probs.to(generator.device)
                    codes[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(self.device)
        return codes

    def latents(self, codes: Tensor) -> Tensor:
        """Quantised latents (n, D·h·w), flattened as `model.embed` gives them, of code maps."""
        n, h, wl = codes.shape
        levels, _, dim = self.codebooks.shape
        w = wl // levels
        per_level = codes.reshape(n * h * w, levels)
        rows = sum(self.codebooks[level].to(codes.device)[per_level[:, level]] for level in range(levels))
        return rows.reshape(n, h, w, dim).permute(0, 3, 1, 2).reshape(n, -1)  # type: ignore[union-attr]

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.latents(self.sample_codes(n, generator))

    def _state(self) -> dict[str, Tensor]:
        assert self.net is not None
        net = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        return {"codebooks": self.codebooks, "map_shape": torch.tensor(self.map_shape), **net}

    def _load_state(self, tensors: dict[str, Tensor]) -> None:
        books, shape = tensors.get("codebooks"), tensors.get("map_shape")
        if books is None or shape is None or books.dim() != 3 or tuple(shape.shape) != (2,):
            raise ValueError("missing or malformed 'codebooks' / 'map_shape'")
        self.codebooks, self.map_shape = books, (int(shape[0]), int(shape[1]))
        if self.map_shape[1] % self.levels or books.shape[2] * math.prod(self.map_shape) // self.levels \
                != self.latent_dim:
            raise ValueError(f"codebooks {tuple(books.shape)} and map {self.map_shape} do not give "
                             f"latent_dim {self.latent_dim}")
        self.net = PixelCNN(int(books.shape[1]), self.hidden, self.layers)
        self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
        self.net.eval()

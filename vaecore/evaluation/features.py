"""A small CNN classifier for 28×28 grayscale images, the feature network of the Fréchet distance.

Inception-v3 (the network behind FID) needs torchvision and its weights, which this project
neither has nor ships, so the Fréchet distance and the classifier score use this classifier
instead: 2 conv layers + 2 fully connected layers, trained once per dataset by
`experiments/train_feature_classifiers.py` and bundled under `checkpoints/classifiers/<dataset>/`
(`model.safetensors` + `config.json`). Its numbers are comparable between models evaluated
with the same classifier, never with Inception-FID/IS numbers from papers.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vaecore.files import CONFIG, WEIGHTS
from vaecore.utils import PROJECT_ROOT, read_json

CLASSIFIERS_DIR = PROJECT_ROOT / "checkpoints" / "classifiers"
DEFAULT_ARCH: dict[str, Any] = {"input_shape": [1, 28, 28], "channels": [32, 64], "hidden": 128,
                                "num_classes": 10, "dropout": 0.25}
DISPLAY_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}


class FeatureClassifier(nn.Module):
    """conv(32)-pool-conv(64)-pool-FC(128)-FC(classes); `features` are the 128 penultimate ReLU units."""

    def __init__(self, architecture: dict[str, Any] | None = None, dataset: str = "mnist") -> None:
        super().__init__()
        arch = {**DEFAULT_ARCH, **(architecture or {})}
        self.architecture = arch
        self.dataset = dataset
        c, h, w = (int(s) for s in arch["input_shape"])
        if h % 4 or w % 4:
            raise ValueError(f"FeatureClassifier needs H and W divisible by 4, got {(c, h, w)}")
        self.input_shape = (c, h, w)
        c1, c2 = (int(n) for n in arch["channels"])
        self.body = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(float(arch["dropout"])),
            nn.Linear(c2 * (h // 4) * (w // 4), int(arch["hidden"])), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(float(arch["dropout"])),
                                  nn.Linear(int(arch["hidden"]), int(arch["num_classes"])))

    @property
    def name(self) -> str:
        """What the features are, for result tables: e.g. "MNIST-classifier"."""
        return f"{DISPLAY_NAMES.get(self.dataset, self.dataset)}-classifier"

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"the {self.name} takes images of shape (B, {', '.join(map(str, self.input_shape))})"
                             f" in [0, 1]; got {tuple(x.shape)}")
        device = next(self.parameters()).device
        return (x.to(device, torch.float32) - 0.5) / 0.5

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate (128-d) activations of images in [0, 1]."""
        return self.body(self._prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.embed(x))

    @torch.no_grad()
    def _batched(self, fn: Any, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            return torch.cat([fn(images[i:i + batch_size]).float().cpu()
                              for i in range(0, images.shape[0], batch_size)])
        finally:
            self.train(was_training)

    def features(self, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
        """(N, 128) float64 features for the Fréchet distance."""
        return self._batched(self.embed, images, batch_size).double().numpy()

    def predict_proba(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """(N, classes) class probabilities p(y|x)."""
        return torch.softmax(self._batched(self.forward, images, batch_size).double(), dim=1)

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
        """Fraction of images classified correctly."""
        pred = self.predict_proba(images, batch_size).argmax(dim=1)
        return float((pred == labels.cpu()).double().mean())

    def classifier_score(self, images: torch.Tensor, batch_size: int = 1000) -> float:
        """exp(E_x KL(p(y|x) ‖ p(y))), the Inception-Score formula with this classifier.

        p(y) is the mean of p(y|x) over the images given. 1 means every image looks alike to the
        classifier (or is unrecognisable); the maximum, the number of classes, means confident and
        evenly spread predictions. Not comparable with the Inception Score of papers.
        """
        return score_from_probabilities(self.predict_proba(images, batch_size))


def score_from_probabilities(p: torch.Tensor) -> float:
    """exp(mean_x KL(p(y|x) ‖ mean_x p(y|x))) from an (N, classes) matrix of probabilities."""
    p = p.double().clamp_min(1e-12)
    p = p / p.sum(dim=1, keepdim=True)
    marginal = p.mean(dim=0, keepdim=True)
    kl = (p * (p.log() - marginal.log())).sum(dim=1)
    return float(math.exp(float(kl.mean())))


def canonical_dataset(name: str) -> str:
    low = str(name).strip().lower()
    return _ALIASES.get(low, low)


def classifier_dir(dataset_name: str, root: str | Path | None = None) -> Path:
    """Folder of the bundled classifier for a dataset."""
    return Path(root or CLASSIFIERS_DIR) / canonical_dataset(dataset_name)


def available_classifiers(root: str | Path | None = None) -> list[str]:
    """Datasets with a bundled classifier."""
    base = Path(root or CLASSIFIERS_DIR)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / WEIGHTS).is_file() and (p / CONFIG).is_file())


@functools.lru_cache(maxsize=8)
def _load_cached(folder: str) -> FeatureClassifier:
    from safetensors.torch import load_file

    path = Path(folder)
    config = read_json(path / CONFIG)
    model = FeatureClassifier(config.get("architecture"), dataset=config.get("dataset", path.name))
    model.load_state_dict(load_file(str(path / WEIGHTS)), strict=True)
    model.config = config
    return model.eval()


def load_feature_classifier(dataset_name: str, root: str | Path | None = None) -> FeatureClassifier:
    """The bundled classifier for `dataset_name` (safetensors + JSON only), in eval mode, on the CPU.

    Raises ValueError naming the datasets that have one when there is none for this dataset.
    Loaded once per process; callers that move it to another device get that shared instance.
    """
    folder = classifier_dir(dataset_name, root)
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        have = ", ".join(available_classifiers(root)) or "none"
        raise ValueError(f"no feature classifier for dataset {dataset_name!r} (bundled: {have}); train one with "
                         "experiments/train_feature_classifiers.py")
    return _load_cached(str(folder.resolve()))


def features(images: torch.Tensor, dataset: str = "mnist") -> np.ndarray:
    """Features of images under the bundled classifier of `dataset`."""
    return load_feature_classifier(dataset).features(images)


def classifier_score(images: torch.Tensor, dataset: str = "mnist") -> float:
    """Classifier score of images under the bundled classifier of `dataset`."""
    return load_feature_classifier(dataset).classifier_score(images)


def cross_entropy(model: FeatureClassifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Training loss (mean cross-entropy) of the classifier on a batch."""
    return F.cross_entropy(model(x), y.to(next(model.parameters()).device))

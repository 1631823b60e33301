"""Model cards: the README.md beside a model's weights that says what it is, its data and its metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vaecore.utils import atomic_write_bytes

_COMMON = {"model_type", "preset", "input_shape", "latent_dim", "arch", "likelihood",
           "likelihood_kwargs", "dataset"}


def write_model_card(folder: Path, config: dict[str, Any], metrics: dict[str, Any] | None = None,
                     extra: str = "") -> None:
    """A README.md model card: what the model is, its data, and its metrics when known."""
    if metrics is None and (folder / "eval.json").is_file():
        metrics = json.loads((folder / "eval.json").read_text())
    train = json.loads((folder / "train.json").read_text()) if (folder / "train.json").is_file() else {}
    lik = config.get("likelihood", "?")
    kw = config.get("likelihood_kwargs") or {}
    lines = [
        "---", "library_name: vaecore", "tags:", "- vae", "- vaecore", f"- {config.get('preset', 'vae')}",
        f"datasets:\n- {config.get('dataset', 'unknown')}", "---", "",
        f"# {config.get('preset', 'vae')}", "",
        "A variational autoencoder trained with [vaecore](https://github.com/) (VAE Explorer).", "",
        "| field | value |", "| --- | --- |",
        f"| likelihood | {lik} {json.dumps(kw) if kw else ''} |",
        f"| family | {config.get('model_type')} |",
        f"| architecture | {config.get('arch')} |",
        f"| latent size | {config.get('latent_dim')} |",
        f"| input shape | {config.get('input_shape')} |",
        f"| data | {config.get('dataset')} |",
    ]
    family = {k: v for k, v in config.items() if k not in _COMMON}
    if family:
        lines.insert(lines.index("| field | value |") + 2, "| family settings | "
                     + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(family.items())) + " |")
    refused = _refused_likelihoods(config.get("model_type"))
    lines.append("| likelihoods refused | " + ("; ".join(f"{k}: {v}" for k, v in sorted(refused.items()))
                                            or "none: any decoder likelihood of vaecore") + " |")
    if train:
        lines += [f"| epochs | {train.get('epochs')} (max steps: {train.get('max_steps')}) |",
                  f"| batch size / lr / seed | {train.get('batch_size')} / {train.get('lr')} / {train.get('seed')} |"]
    if metrics:
        lines += ["", "## Test metrics", "", "| metric | value |", "| --- | --- |"]
        for k, v in metrics.items():
            if isinstance(v, int | float):
                lines.append(f"| {k} | {v:.4g} |")
    lines += ["", "## Use", "", "```python", "import vaecore", "model = vaecore.load(\"<this folder or repo id>\")",
              "images = model.sample(16)", "```", ""]
    if extra:
        lines += [extra, ""]
    atomic_write_bytes(folder / "README.md", "\n".join(lines).encode())


def _refused_likelihoods(model_type: str | None) -> dict[str, str]:
    """The family's refused likelihoods with their reasons (the registry is read lazily: no import cycle)."""
    from vaecore.models.base import MODEL_TYPES

    cls = MODEL_TYPES.get(model_type or "")
    return dict(getattr(cls, "refused_likelihoods", {}) or {})

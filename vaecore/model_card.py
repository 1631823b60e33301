"""Model cards: the README.md beside a model's weights that says what it is, its data and its metrics.

What the model is comes from its family class (`title`, `what`, `tags`, `refused_likelihoods`), each metric's
label and unit from the metric registry, so a card never calls an autoencoder a VAE or a metric by another name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vaecore.evaluation.metrics import METRICS, outcome
from vaecore.evaluation.registry import State, describe_key
from vaecore.files import CARD, EVAL, TRAIN
from vaecore.models.base import MODEL_TYPES, register_card_writer
from vaecore.utils import atomic_write_bytes

_COMMON = {"model_type", "preset", "input_shape", "latent_dim", "arch", "likelihood",
           "likelihood_kwargs", "dataset"}


@register_card_writer
def write_model_card(folder: Path, config: dict[str, Any], metrics: dict[str, Any] | None = None,
                     extra: str = "") -> None:
    """A README.md model card: what the model is, its data, and its metrics when known."""
    if metrics is None and (folder / EVAL).is_file():
        metrics = json.loads((folder / EVAL).read_text())
    train = json.loads((folder / TRAIN).read_text()) if (folder / TRAIN).is_file() else {}
    family = MODEL_TYPES.get(str(config.get("model_type")))
    title = getattr(family, "title", "") or str(config.get("model_type"))
    what = getattr(family, "what", "") or "a model"
    lik = config.get("likelihood", "?")
    kw = config.get("likelihood_kwargs") or {}
    tags = ["vaecore", *getattr(family, "tags", ()), f"{config.get('preset', 'model')}"]
    lines = [
        "---", "library_name: vaecore", "tags:", *[f"- {t}" for t in dict.fromkeys(tags)],
        f"datasets:\n- {config.get('dataset', 'unknown')}", "---", "",
        f"# {config.get('preset', 'model')}", "",
        f"**{title}**: {what}. Trained with [vaecore](https://github.com/) (VAE Explorer).", "",
        "| field | value |", "| --- | --- |",
        f"| likelihood | {lik} {json.dumps(kw) if kw else ''} |",
        f"| family | {title} (`{config.get('model_type')}`) |",
        f"| architecture | {config.get('arch')} |",
        f"| latent size | {config.get('latent_dim')} |",
        f"| input shape | {config.get('input_shape')} |",
        f"| data | {config.get('dataset')} |",
    ]
    settings = {k: v for k, v in config.items() if k not in _COMMON}
    if settings:
        lines.insert(lines.index("| field | value |") + 2, "| family settings | "
                     + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(settings.items())) + " |")
    refused = dict(getattr(family, "refused_likelihoods", {}) or {})
    lines.append("| likelihoods refused | " + ("; ".join(f"{k}: {v}" for k, v in sorted(refused.items()))
                                            or "none: any decoder likelihood of vaecore") + " |")
    if train:
        lines += [f"| epochs | {train.get('epochs')} (max steps: {train.get('max_steps')}) |",
                  f"| batch size / lr / seed | {train.get('batch_size')} / {train.get('lr')} / {train.get('seed')} |"]
    if metrics:
        lines += _metrics_section(metrics)
    lines += ["", "## Use", "", "```python", "import vaecore", "model = vaecore.load(\"<this folder or repo id>\")",
              "images = model.sample(16)", "```", ""]
    if extra:
        lines += [extra, ""]
    atomic_write_bytes(folder / CARD, "\n".join(lines).encode())


def _metrics_section(metrics: dict[str, Any]) -> list[str]:
    """The test metrics with the registry's labels and units, then why the others are undefined."""
    lines = ["", "## Test metrics", "", "| metric | value | unit |", "| --- | --- | --- |"]
    undefined = []
    for key, value in metrics.items():
        metric = METRICS.get(key)
        if metric is not None and outcome(metrics, key).state is State.UNDEFINED:
            undefined.append(f"- {metric.label} (`{key}`): {outcome(metrics, key).reason}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            label, unit = (f"{metric.label} (`{key}`)", f"{metric.unit} {metric.direction.arrow}".strip()) \
                if metric else (f"`{key}`: {describe_key(key)}" if describe_key(key) else f"`{key}`", "")
            lines.append(f"| {label} | {value:.4g} | {unit} |")
    features = metrics.get("fd_features")
    if features:
        lines += ["", f"FD uses the features of `{features}`, not Inception-v3: comparable between models here, "
                  "never with FID numbers in papers."]
    if undefined:
        lines += ["", "Undefined for this model:", "", *undefined]
    return lines


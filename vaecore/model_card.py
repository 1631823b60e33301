"""Model cards: the README.md beside a model's weights that says what it is, its data and its metrics.

What the model is comes from its family class (`title`, `what`, `tags`, `refused_likelihoods`), its real latent
shape from the model itself (a VQ-VAE's 16 × 7 × 7 codes, not its code size), each metric's label, unit and what its
± is over from the metric registry, so a card never calls an autoencoder a VAE or a metric by another name. A number
comes with its context: the images and K it was computed on, its SE or seeds' spread, the feature network of FD,
why a metric is undefined, a saturated I(x; z), a collapsed posterior, and the training budget.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from vaecore.evaluation.metrics import COLLAPSED_KL, METRICS, outcome
from vaecore.evaluation.registry import State, describe_key
from vaecore.evaluation.uncertainty import RULE, Over
from vaecore.files import CARD, EVAL, TRAIN
from vaecore.models.base import MODEL_TYPES, register_card_writer
from vaecore.utils import atomic_write_bytes, read_json

_COMMON = {"model_type", "preset", "input_shape", "latent_dim", "arch", "likelihood",
           "likelihood_kwargs", "dataset"}


@register_card_writer
def write_model_card(folder: Path, config: dict[str, Any], metrics: dict[str, Any] | None = None,
                     extra: str = "") -> None:
    """A README.md model card: what the model is, its data, and its metrics when known."""
    if metrics is None:
        metrics = _side_file(folder / EVAL)
    train = _side_file(folder / TRAIN)
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
        f"| latent size | {_latent_text(config)} |",
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
    differences = list(dict.fromkeys(c.__dict__["pythae"] for c in reversed(getattr(family, "__mro__", ()))
                                     if c.__dict__.get("pythae")))
    if differences:
        lines += ["", "Differences from Pythae 0.1.2 on identical inputs:", "", *(f"- {d}" for d in differences)]
    aliases = _aliases(config.get("preset"))
    if aliases:
        lines += ["", "The same model as preset " + ", ".join(f"`{a}`" for a in aliases) + " (identical configuration "
                  "and training settings under another paper's name); that name loads this model."]
    if metrics:
        lines += _metrics_section(metrics, train)
    lines += ["", "## Use", "", "```python", "import vaecore", "model = vaecore.load(\"<this folder or repo id>\")",
              "images = model.sample(16)", "```", ""]
    if extra:
        lines += [extra, ""]
    atomic_write_bytes(folder / CARD, "\n".join(lines).encode())


def _side_file(path: Path) -> dict[str, Any]:
    """A JSON object the card shows (eval.json, train.json), or {} when it is missing; a corrupt one is named in
    a warning and left out, so it never blocks the card, nor the checkpoint that writes it."""
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        warnings.warn(f"the model card leaves out {path}: {e}", stacklevel=3)
        return {}
    if not isinstance(data, dict):
        warnings.warn(f"the model card leaves out {path}: it holds a {type(data).__name__}, not a JSON object",
                      stacklevel=3)
        return {}
    return data


SAMPLER_NAMES = {"gmm": "a 10-component GMM", "maf": "a MAF", "two-stage": "a 2-stage VAE"}
_SKIP = {"notes", "settings", "uncertainty", "check", "n_test", "kl-per-dim"}


def _metrics_section(metrics: dict[str, Any], train: dict[str, Any] | None = None) -> list[str]:
    """The test metrics with the registry's labels, units and uncertainty, then the context each number needs."""
    settings = metrics.get("settings") or {}
    lines = ["", "## Test metrics", "", "| metric | value | ± over | unit |", "| --- | --- | --- | --- |"]
    undefined, shown = [], set()
    older = bool(settings) and not metrics.get("uncertainty")  # evaluated before per-image values and seeds
    for key in [k for k in METRICS if k in metrics] + [k for k in metrics if k not in METRICS]:
        if key in _SKIP or key in shown:
            continue
        shown.add(key)
        metric = METRICS.get(key) or _sampler_metric(key)
        o = outcome(metrics, key)
        if metric is not None and o.state is State.UNDEFINED:
            undefined.append(f"- {_label(key, metric)}: {o.reason}")
            continue
        value = metrics.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        e = o.estimate
        spread = "" if e is None else f" ± {(e.sd if e.over is Over.SEEDS else e.se):.3g}"
        over = "" if e is None else (f"{e.n} seeds (s.d.)" if e.over is Over.SEEDS else f"{e.n} test images (SE)")
        if e is None and older and metric is not None and (metric.per_image or metric.seeded) \
                and key != "fd_two-stage":
            over = "none: an older evaluation"
        if metric is None:
            label, unit = (f"`{key}`: {describe_key(key)}" if describe_key(key) else f"`{key}`"), ""
        else:
            label, unit = _label(key, metric), f"{metric.unit} {metric.direction.arrow}".strip()
        lines.append(f"| {label} | {value:.4g}{spread} | {over} | {unit} |")
    lines += ["", "How to read these numbers:", "", *(f"- {n}" for n in _context(metrics, settings, train))]
    if undefined:
        lines += ["", "Undefined for this model:", "", *undefined]
    return lines


def _sampler_metric(key: str) -> Any:
    """The metric a sampler's copy of it is (fd_gmm → fd), or None."""
    base, _, sampler = key.partition("_")
    metric = METRICS.get(base)
    return metric if metric is not None and metric.per_sampler and sampler in SAMPLER_NAMES else None


def _label(key: str, metric: Any) -> str:
    if key == metric.key:
        return f"{metric.label} (`{key}`)"
    return f"{metric.label}, z from {SAMPLER_NAMES[key.partition('_')[2]]} (`{key}`)"


def _context(metrics: dict[str, Any], settings: dict[str, Any], train: dict[str, Any] | None) -> list[str]:
    """What each number needs to be read: images, K, seeds, the rule, FD's network, saturation, collapse, budget."""
    notes = []
    if settings:
        s = settings
        notes.append(f"Computed on the first {s.get('n_test', '?')} images of the {s.get('dataset', '?')} test split "
                     f"(fingerprint {s.get('fingerprint', 'not recorded')}); IWAE, −log p and the dequantised bound "
                     f"with K = {s.get('iwae_k', '?')} importance samples per image; generated images: "
                     f"{s.get('n_samples', '?')} per set, {s.get('sample_seeds', 1)} sample seed(s). ± is the SE over "
                     f"the test images or the s.d. over seeds, as the table says; {RULE}.")
    if settings and not metrics.get("uncertainty"):
        notes.append("This evaluation predates the stored per-image values: its numbers are single values without an "
                     "SE (one sample seed for FD, one k-means run), not to be compared with another model's until it "
                     "is re-evaluated (`python experiments/train_zoo.py --stage eval --only <name>` for a zoo model).")
    if metrics.get("fd_features"):
        notes.append(f"FD, precision/recall and density/coverage use the features of `{metrics['fd_features']}`, not "
                     "Inception-v3: comparable between models here, never with FID numbers in papers.")
    if metrics.get("nll-pdf") is not None:
        notes.append("−log pdf is the density at the 8-bit images themselves: unbounded on discrete data, it ranks "
                     "nothing; compare −log p (nll-discrete) or its dequantised bound (nll-dequant).")
    if metrics.get("mutual-info_saturated"):
        notes.append(f"I(x; z) = {metrics.get('mutual-info', 0):.2f} sits at its ceiling ln(mixture size) = "
                     f"{metrics.get('mutual-info_bound', 0):.2f}: saturated, it ranks nothing (the KL bounds it "
                     "above).")
    dims, collapsed = metrics.get("kl-per-dim"), metrics.get("kl-per-dim_collapsed")
    if dims and collapsed:
        whole = collapsed == len(dims)
        notes.append(f"Posterior collapse: {'every one' if whole else f'{collapsed} of {len(dims)}'} of the latent "
                     f"dimensions carries under {COLLAPSED_KL} nats"
                     + (": the decoder ignores z, so its outputs do not depend on the input." if whole else "."))
    if train:
        notes.append(f"Budget: trained {train.get('epochs')} epochs from scratch with one seed; the papers' numbers "
                     "come from other networks and longer training (checkpoints/RESULTS.md says how).")
    return notes


def _latent_text(config: dict[str, Any]) -> str:
    """The model's real latent shape, e.g. '16' or '16 × 7 × 7 = 784 (codes of 16 values on a 7 × 7 grid)'."""
    shape = _latent_shape(config)
    if not shape or len(shape) == 1:
        return str(shape[0] if shape else config.get("latent_dim"))
    size = 1
    for n in shape:
        size *= n
    grid = " × ".join(map(str, shape[1:]))
    return f"{' × '.join(map(str, shape))} = {size} (codes of {shape[0]} values on a {grid} grid)"


def _latent_shape(config: dict[str, Any]) -> tuple[int, ...] | None:
    """The latent shape of the model the config builds (on a forked RNG: writing a card draws none of the caller's
    random numbers), or None when it cannot be built."""
    import torch

    cls = MODEL_TYPES.get(str(config.get("model_type")))
    if cls is None:
        return None
    try:
        with torch.random.fork_rng(devices=[]):
            return tuple(int(n) for n in cls(config).capabilities.latent_shape)
    except Exception:  # noqa: BLE001 - a card of an unbuildable config falls back to its latent_dim
        return None


def _aliases(preset: str | None) -> list[str]:
    """Presets declared the same model as this one."""
    from vaecore.presets import PRESETS

    return [n for n, p in PRESETS.items() if preset and p.alias_of == preset]


"""Comparison tables: several models on the same test images and seed, in the papers' layouts, every number with
its uncertainty.

    rows = compare({"σ-VAE": m1, "VAE": m2}, dataset, samplers=["prior", "gmm"], n_test=1000)
    print(to_markdown(rows, layout="arelbo-table3", reference=True))

`compare` returns one row per model × sampler. Metrics that do not depend on the sampler
(likelihoods, MSE, KNN, …) are computed once per model and repeated in its rows; those that
do (the Fréchet distance, precision/recall, the classifier score) are computed per sampler, over
`sample_seeds` seeds. Every model sees the same test images and the same seed; each row holds
"uncertainty" (SE over images, s.d. over seeds) and, with `per_image=True`, its per-image values
("per_image", a `PerImage`) for paired differences. The tables print value ± SE or ± s.d.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaecore.evaluation import metrics as M
from vaecore.evaluation import reference as ref
from vaecore.evaluation.registry import METRICS, State, check_names, outcome
from vaecore.evaluation.uncertainty import RULE, Over
from vaecore.samplers import Progress, Sampler, fit_sampler, load_or_fit

__all__ = ["DEFAULT_METRICS", "LAYOUTS", "SAMPLE_METRICS", "compare", "has_prior", "to_json", "to_markdown"]

SAMPLE_METRICS = tuple(k for k, m in METRICS.items() if m.per_sampler)
"""Metrics of generated images (`Metric.per_sampler`): computed once per sampler."""

DEFAULT_METRICS = ["elbo", "nll-pdf", "nll-discrete", "bpd", "mse", "active-units", "fd"]
"""What `compare` computes when `metrics` is None: what both paper layouts need, at modest cost."""

LAYOUTS: dict[str, str] = {
    "arelbo-table3": "AR-ELBO Table 3: MSE, FD with z from the prior, a 2nd-stage VAE and a GMM",
    "sigma-table4": "σ-VAE Table 4: −log pdf, −log p (nats per image) and FD",
    "pythae": "Pythae's four tasks: reconstruction MSE, FD per sampler, linear-probe and k-means accuracy",
    "full": "every metric, one line per model × sampler",
}

_SAMPLER_LABELS = {"prior": "prior", "two-stage": "2nd stage", "gmm": "GMM", "maf": "MAF", "vamp": "VampPrior"}
_ID_KEYS = ("model", "preset", "sampler", "dataset", "n_test", "n_samples", "seed", "iwae_k", "epochs", "steps",
            "note", "notes", "fd_features", "params", "uncertainty", "per_image")


def has_prior(model: nn.Module) -> bool:
    """False for AE and RAE: nothing ties their latents to a prior, so 'prior' samples mean nothing."""
    return bool(model.capabilities.prior_samples)


def _progress(progress: Progress | bool | None) -> Callable[[float, str], None]:
    if progress is True:
        return lambda f, msg: print(f"[{f:4.0%}] {msg}", file=sys.stderr, flush=True)
    if callable(progress):
        return progress
    return lambda f, msg: None


def _training_info(folder: Path) -> dict[str, Any]:
    from vaecore.training.trainer import read_metrics

    steps = [r for r in read_metrics(folder) if "step" in r]
    epochs = [r["epoch"] for r in steps if r.get("kind") == "epoch" and "epoch" in r]
    info: dict[str, Any] = {}
    if steps:
        info["steps"] = max(int(r["step"]) for r in steps)
    if epochs:
        info["epochs"] = round(float(max(epochs)), 2)
    return info


def _resolve(models: Mapping[str, Any], folders: Mapping[str, str | Path] | None
             ) -> list[tuple[str, nn.Module, Path | None]]:
    from vaecore.hub import load, resolve

    out = []
    for key, value in models.items():
        folder = Path(folders[key]) if folders and key in folders else None
        if isinstance(value, str | Path):
            folder = folder or resolve(value)
            value = load(folder)
        out.append((key, value, folder))
    return out


def compare(models: Mapping[str, Any], dataset: Any, samplers: Sequence[str] = ("prior",),
            metrics: Sequence[str] | None = None, n_test: int = 1000, seed: int = 0, n_samples: int = 1000, *,
            iwae_k: int = 100, batch_size: int = 500, n_train: int = 10_000, fid_weights: str | None = None,
            sampler_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
            folders: Mapping[str, str | Path] | None = None, info: Mapping[str, Mapping[str, Any]] | None = None,
            progress: Progress | bool | None = None, sample_seeds: int = 3,
            per_image: bool = False) -> list[dict[str, Any]]:
    """Evaluate every model on the same `n_test` test images and seed; one row per model × sampler.

    `models` maps a display name to a model, a run folder or a bundled/Hub name. "prior" means
    the model's own prior (N(0, I), or its VampPrior); AE/RAE have none, so their prior rows
    hold no sample metrics. Other samplers are fitted on `n_train` training latents with
    `sampler_kwargs[name]` (e.g. {"gmm": {"components": 10}}) and, for models with a folder
    (`folders`, or given as a path), saved there and reused. `info[name]` adds fields (e.g.
    epochs) to a model's rows. Generated-image metrics are means over `sample_seeds` seeds.
    """
    names = check_names(list(DEFAULT_METRICS if metrics is None else metrics))
    for s in samplers:
        if s != "prior":
            from vaecore.samplers import SAMPLERS
            if s not in SAMPLERS:
                raise KeyError(f"unknown sampler {s!r}; known: {', '.join(SAMPLERS)}")
    report = _progress(progress)
    fixed = [m for m in names if m not in SAMPLE_METRICS]
    sampled = [m for m in names if m in SAMPLE_METRICS]
    common = {"n_test": n_test, "seed": seed, "batch_size": batch_size}
    entries = _resolve(models, folders)
    rows: list[dict[str, Any]] = []
    total = len(entries) * (1 + len(samplers))
    done = 0
    for key, model, folder in entries:
        model.eval()
        ident: dict[str, Any] = {"model": key, "preset": getattr(getattr(model, "config", None), "preset", None),
                                 "dataset": getattr(dataset, "name", None), "n_test": n_test, "seed": seed,
                                 "params": sum(p.numel() for p in model.parameters())}
        if folder is not None:
            ident.update(_training_info(folder))
        ident.update((info or {}).get(key, {}))
        report(done / total, f"{key}: {', '.join(fixed) or 'no sampler-free metrics'}")
        base = M.evaluate(model, dataset, fixed, iwae_k=iwae_k, per_image=per_image, **common) if fixed else {}
        notes = dict(base.pop("notes", None) or {})
        spread = dict(base.pop("uncertainty", None) or {})
        settings = base.pop("settings", None) or {}
        ident["n_test"] = settings.get("n_test", n_test)
        if per_image and fixed:
            from vaecore.evaluation.per_image import per_image_from

            ident["per_image"] = per_image_from(base, M.image_set({"settings": settings}))
        base.pop("per_image", None)
        if any(METRICS[m].pass_name == "iwae" for m in fixed):
            ident["iwae_k"] = iwae_k
        done += 1
        for name in samplers:
            report(done / total, f"{key}: sampler {name}")
            row = {**ident, "sampler": name, **base}
            row_notes, row_spread = dict(notes), dict(spread)
            if sampled:
                row["n_samples"] = n_samples
                sampler, note = _sampler_for(model, name, dataset, folder, n_train, seed,
                                             dict((sampler_kwargs or {}).get(name, {})))
                if note:
                    row.update({m: None for m in sampled}, fd_features=None,
                               note="; ".join(n for n in (ident.get("note"), note) if n))
                else:
                    res = M.evaluate(model, dataset, sampled, sampler=sampler, n_samples=n_samples,
                                     fid_weights=fid_weights, sample_seeds=sample_seeds, **common)
                    res.pop("settings", None)
                    row_notes.update(res.pop("notes", None) or {})
                    row_spread.update(res.pop("uncertainty", None) or {})
                    row.update(res)
            row["notes"], row["uncertainty"] = row_notes, row_spread
            rows.append(row)
            done += 1
    report(1.0, f"compared {len(entries)} model(s) × {len(samplers)} sampler(s)")
    return rows


def _sampler_for(model: nn.Module, name: str, dataset: Any, folder: Path | None, n_train: int, seed: int,
                 kwargs: dict[str, Any]) -> tuple[Sampler | None, str | None]:
    if name == "prior":
        if not has_prior(model):
            return None, "no prior: an AE/RAE generates only through a fitted sampler"
        return None, None
    if name == "vamp" and getattr(getattr(model, "config", None), "prior", None) != "vamp":
        return None, "no VampPrior: the model was not trained with prior='vamp'"
    if folder is not None:
        return load_or_fit(model, folder, name, dataset, n_train=n_train, seed=seed, **kwargs), None
    return fit_sampler(model, dataset, name, n_train=n_train, seed=seed, **kwargs), None


# --------------------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.tolist() if value.numel() != 1 else value.item()
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a JSON array (NaN/inf as null, tensors as numbers; per-image values left out)."""
    return json.dumps([_clean({k: v for k, v in r.items() if k != "per_image"}) for r in rows], indent=2,
                      ensure_ascii=False) + "\n"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    if isinstance(value, list | tuple):
        return f"[{len(value)} values]"
    return str(value).replace("|", "\\|")


def _cell(row: Mapping[str, Any] | None, key: str, digits: int = 2) -> str:
    """A metric of a row with its uncertainty: 'v ± SE' (over images) or 'v ± s.d.' (over seeds), '—' if None."""
    if row is None:
        return "not run"
    o = outcome(row, key)
    if o.state is not State.VALUE or o.estimate is None or isinstance(o.value, bool):
        return _fmt(row.get(key), digits)
    e = o.estimate
    spread = e.sd if e.over is Over.SEEDS else e.se
    return f"{_fmt(float(o.value), digits)} ± {_fmt(spread, digits)}" + (" s.d." if e.over is Over.SEEDS else "")


def _first_row(per_sampler: Mapping[str, Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
    return next((r for r in per_sampler.values() if r.get(key) is not None), None)


PYTHAE_SAMPLERS = ("Our samplers' budgets differ too: GMM with 10 components and a MAF (10,000 Adam steps) fitted on "
                   "the posterior means of 10,000 training images, where Pythae fits its samplers on posterior draws "
                   "of its training set (MAF and 2-stage VAE for 200 epochs).")
OUR_SAMPLERS = ("Our samplers: a GMM with 10 components and the 2-stage VAE fitted on the posterior means of 10,000 "
                "training images (the 2-stage VAE by its own stage, one sample seed), not the paper's settings.")


def _budget_note(rows: Sequence[Mapping[str, Any]], theirs: str, samplers: str) -> str:
    """Our networks' size and training budget beside the paper's, from the rows."""
    params = sorted({int(r["params"]) for r in rows if r.get("params")})
    epochs = sorted({float(r["epochs"]) for r in rows if r.get("epochs") is not None})
    size = (f"{params[0] / 1e6:.2f} M" if len(params) == 1 else f"{params[0] / 1e6:.2f}–{params[-1] / 1e6:.2f} M") \
        if params else "?"
    ep = ", ".join(f"{e:g}" for e in epochs) or "?"
    return (f"- Budget: our networks have {size} parameters and trained {ep} epochs, one seed, one configuration; "
            f"{theirs}. {samplers} The orderings, not the values, are comparable.")


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return out


def _by_model(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    grouped: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        grouped.setdefault(str(r.get("model")), {})[str(r.get("sampler", "prior"))] = r
    return grouped


def _features(rows: Sequence[Mapping[str, Any]]) -> str:
    feats = sorted({str(r["fd_features"]) for r in rows if r.get("fd_features")})
    return ", ".join(feats) if feats else "feature-network"


def _first(per_sampler: Mapping[str, Mapping[str, Any]], key: str) -> Any:
    for r in per_sampler.values():
        if r.get(key) is not None:
            return r[key]
    return None


def _training(per_sampler: Mapping[str, Mapping[str, Any]]) -> str:
    epochs, steps = _first(per_sampler, "epochs"), _first(per_sampler, "steps")
    parts = [f"{_fmt(epochs)} ep" if epochs is not None else "", f"{steps} steps" if steps is not None else ""]
    return " / ".join(p for p in parts if p) or "—"


def _common_notes(rows: Sequence[Mapping[str, Any]], shown: set[str] | None = None) -> list[str]:
    def values(key: str) -> str:
        vals = sorted({str(r[key]) for r in rows if r.get(key) is not None})
        return ", ".join(vals) if vals else "—"

    notes = [f"Data: {values('dataset')} test set, the same {values('n_test')} images for every model "
             f"(seed {values('seed')})."]
    if any(r.get("n_samples") for r in rows):
        notes.append(f"FD: Fréchet distance between {values('fd_features')} features of {values('n_samples')} "
                     "generated images and the test images; lower is better.")
    flagged: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        for n in str(r.get("note") or "").split("; "):
            if n:
                flagged.setdefault((str(r["model"]), n), []).append(str(r.get("sampler")))
    notes += [f"{m} ({', '.join(s)}): {n}." for (m, n), s in flagged.items()]
    seen = set()
    for r in rows:
        for metric, why in (r.get("notes") or {}).items():
            if (r["model"], metric) not in seen and (shown is None or metric in shown):
                seen.add((r["model"], metric))
                notes.append(f"{r['model']}: {metric} undefined, {why}.")
    return notes


def to_markdown(rows: Sequence[Mapping[str, Any]], layout: str = "full", *, reference: bool = False,
                title: str | None = None) -> str:
    """Rows as a Markdown table in a paper's layout (see `LAYOUTS`), with units and notes.

    With `reference=True` the paper layouts add the published numbers beside ours, labelled
    "paper"; the papers' FID uses Inception features and is not comparable with our FD.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    lines = [f"## {title}", ""] if title else []
    if layout == "arelbo-table3":
        lines += _arelbo_table3(rows, reference)
    elif layout == "sigma-table4":
        lines += _sigma_table4(rows, reference)
    elif layout == "pythae":
        lines += _pythae(rows, reference)
    else:
        lines += _full(rows)
    shown = {"arelbo-table3": {"mse", "fd"}, "sigma-table4": {"nll-dequant", "nll-discrete", "fd"},
             "pythae": {"mse", "fd", "probe", "kmeans"}}.get(layout)
    lines += [""] + [f"- {n}" for n in _common_notes(rows, shown)]
    return "\n".join(lines) + "\n"


def _arelbo_table3(rows: Sequence[Mapping[str, Any]], reference: bool) -> list[str]:
    grouped = _by_model(rows)
    present = list(dict.fromkeys(str(r.get("sampler")) for r in rows))
    order = ["prior", "two-stage", "gmm"] + [s for s in present if s not in ("prior", "two-stage", "gmm")]
    feats = _features(rows)
    mse = METRICS["mse"].short
    header = ["model", "trained", mse] + ([f"{mse} (paper)"] if reference else [])
    paper_key = {"prior": "fid_prior", "two-stage": "fid_two_stage", "gmm": "fid_gmm"}
    for s in order:
        header.append(f"{METRICS['fd'].short} {_SAMPLER_LABELS.get(s, s)} ({feats} feats)")
        if reference and s in paper_key:
            header.append(f"FID {_SAMPLER_LABELS[s] if s != 'gmm' else 'GMM-10'} (paper, Inception)")
    if reference:
        header.append("paper row")
    body = []
    for model, per in grouped.items():
        paper = ref.reference_row("arelbo-table3", str(_first(per, "preset"))) if reference else None
        cells = [_fmt(model), _training(per), _cell(_first_row(per, "mse"), "mse")]
        if reference:
            cells.append(_fmt(paper.get("mse") if paper else None))
        for s in order:
            cells.append(_cell(per.get(s), "fd"))
            if reference and s in paper_key:
                cells.append(_fmt(paper.get(paper_key[s]) if paper else None))
        if reference:
            cells.append(paper["label"] if paper else "not in the paper")
        body.append(cells)
    notes = ["", "- MSE: squared error of the reconstruction (decoder mean of the posterior mean), summed over "
             "the pixels of an image and averaged over the test images (pixel values in [0, 1]), as the "
             "AR-ELBO paper reports it."]
    notes.append("- 'prior' draws z from the model's prior; '2nd stage' from a 2-stage VAE (Dai & Wipf) and "
                 "'GMM' from a Gaussian mixture, both fitted on the training latent means. AE and RAE have no "
                 "prior (— as in the paper).")
    notes.append(f"- ± is the s.d. over sample seeds (FD) or the SE over test images (MSE); {RULE}.")
    if reference:
        s = ref.ARELBO_MNIST_SETTINGS
        notes.append(f"- paper: {ref.SOURCES['arelbo']}, Table 3 (MNIST), trained up to {s['epochs']} epochs, "
                     f"batch {s['batch_size']}, latent {s['latent_dim']}, FID from {s['fid_samples']:,} samples. "
                     f"Note: {ref.FID_NOTE}. — in a paper column: not reported, or unreadable in our copy "
                     "of the paper.")
        notes.append(_budget_note(rows, f"the paper's network ({s['architecture']}, {_arch_params('arelbo-conv')} "
                                        f"parameters) trained up to {s['epochs']} epochs", OUR_SAMPLERS))
    return _table(header, body) + notes


def _pythae(rows: Sequence[Mapping[str, Any]], reference: bool) -> list[str]:
    grouped = _by_model(rows)
    present = list(dict.fromkeys(str(r.get("sampler")) for r in rows))
    order = [s for s in ("prior", "gmm", "maf", "two-stage", "vamp") if s in present]
    order += [s for s in present if s not in order]
    feats = _features(rows)
    header = ["model", "trained", METRICS["mse"].short]
    for s in order:
        header.append(f"{METRICS['fd'].short} {_SAMPLER_LABELS.get(s, s)} ({feats} feats)")
        if reference:
            header.append(f"FID {_SAMPLER_LABELS.get(s, s)} (Pythae Table 4, Inception)")
    header += [f"{METRICS[k].short} acc" for k in ("probe", "kmeans")] + (["Pythae row"] if reference else [])
    body = []
    for model, per in grouped.items():
        paper = ref.reference_row("pythae-table4", str(_first(per, "preset"))) if reference else None
        cells = [_fmt(model), _training(per), _cell(_first_row(per, "mse"), "mse")]
        for s in order:
            cells.append(_cell(per.get(s), "fd"))
            if reference:  # a VampPrior model's own prior is Pythae's "VAMP" sampler
                key = "vamp" if s == "prior" and paper and "vamp" in paper else s
                cells.append(_fmt(paper.get(key) if paper else None))
        cells += [_cell(_first_row(per, "probe"), "probe", 3), _cell(_first_row(per, "kmeans"), "kmeans", 3)]
        if reference:
            cells.append(paper["label"] if paper else "not in Pythae's benchmark")
        body.append(cells)
    notes = ["", "- Protocol: MSE summed over the pixels of a test image; FD from generated images per sampler "
             "(GMM with 10 components, MAF 2 × 3 × 128 and the 2-stage VAE fitted on training latent means); "
             "linear probe: multinomial logistic regression on standardised training latent means, scored on "
             "the test latent means (± SE over them); k-means: k = 10 on the test latent means, clusters matched "
             "one-to-one to labels (Hungarian), mean ± s.d. over 10 runs; FD ± s.d. over sample seeds."]
    if reference:
        st = ref.PYTHAE_MNIST_SETTINGS
        notes.append(_budget_note(rows, f"Pythae's MNIST ConvNet has {_arch_params('pythae-conv')} parameters, "
                                        f"trained {st['epochs']} epochs, the best of {st['configs_per_model']} "
                                        "configurations", PYTHAE_SAMPLERS))
        notes.append(f"- Pythae: {ref.SOURCES['pythae']}, appendix Table 4 (MNIST, ConvNet): FID on Inception "
                     f"features from {st['fid_samples']:,} samples, {st['epochs']} epochs, lr {st['lr']}, the best "
                     f"of {st['configs_per_model']} configurations per model by validation FID; not comparable "
                     "with our FD in absolute value, nor in training budget. Their reconstruction, "
                     "classification and clustering numbers are not in our copy of the paper.")
    return _table(header, body) + notes


def _arch_params(arch: str) -> str:
    """The parameter count of a Gaussian VAE with latent 16 on MNIST in network `arch`, e.g. '17.2 M'."""
    from vaecore.presets import build_preset

    model = build_preset("gaussian-vae", input_shape=(1, 28, 28), arch=arch, latent_dim=16)
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M"


def _sigma_table4(rows: Sequence[Mapping[str, Any]], reference: bool) -> list[str]:
    grouped = _by_model(rows)
    feats = _features(rows)
    deq, p8, fd = (METRICS[k] for k in ("nll-dequant", "nll-discrete", "fd"))
    header = ["model", "trained", f"{deq.short} ({deq.unit}/image)"] + (["−log pdf (paper, CIFAR)"] if reference
                                                                        else [])
    header += [f"{p8.short} ({p8.unit}/image)"] + ([f"{p8.short} (paper, CIFAR)"] if reference else [])
    header += [f"{fd.short} prior ({feats} feats)"]
    header += ["FID (paper, CIFAR, Inception)", "paper row"] if reference else []
    body = []
    for model, per in grouped.items():
        paper = ref.reference_row("sigma-table4", str(_first(per, "preset"))) if reference else None

        def bound(key: str, paper: dict[str, Any] | None = paper) -> str:
            v = paper.get(key) if paper else None
            return f"< {_fmt(v, 1)}" if v is not None else "—"

        prior = per.get("prior")
        cells = [_fmt(model), _training(per), _cell(_first_row(per, "nll-dequant"), "nll-dequant", 1)]
        if reference:
            cells.append(bound("nll_pdf"))
        cells.append(_cell(_first_row(per, "nll-discrete"), "nll-discrete", 1))
        if reference:
            cells.append(bound("nll_discrete"))
        cells.append(_cell(prior, "fd"))
        if reference:
            cells += [_fmt(paper.get("fid") if paper else None, 1), paper["label"] if paper else "not in the paper"]
        body.append(cells)
    notes = ["", "- −log p: the probability of the 8-bit image (256 bins per value; bits/dim = −log p / (D ln 2)); "
             "−log p (deq.): the continuous density on uniformly dequantised images, E_u[−log pdf((255x + u)/256)] + "
             "D ln 256, an upper bound on −log p of the discrete model the density induces (in the same units). The "
             "density of the 8-bit images themselves (−log pdf, unbounded on discrete data) is not tabled: it ranks "
             "nothing. Nats per image, lower is better, ± SE over the test images; '—' where the likelihood does not "
             "define it."]
    if reference:
        notes.append(f"- paper: {ref.SOURCES['sigma']}, appendix Table 4, on CIFAR-10 (not this dataset): "
                     "its values are upper bounds (negative ELBOs), printed '< value'; compare the ordering of "
                     f"models, not the values. Note: {ref.FID_NOTE}.")
    return _table(header, body) + notes


def _full(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    known = list(METRICS)
    keys: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in _ID_KEYS and k not in keys and not isinstance(v, list | tuple | dict):
                keys.append(k)
    keys.sort(key=lambda k: known.index(k) if k in known else len(known))
    header = ["model", "sampler", "trained"] + [k if k != "fd" else f"fd ({_features(rows)} feats)" for k in keys]
    body = [[_fmt(r.get("model")), _fmt(r.get("sampler")), _training({"_": r})] + [_fmt(r.get(k)) for k in keys]
            for r in rows]
    notes = ["", "Metrics:"] + [f"- {k}: {METRICS[k].title}: {METRICS[k].description}" for k in keys if k in METRICS]
    return _table(header, body) + notes

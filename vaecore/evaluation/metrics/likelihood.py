"""Likelihood metrics: the ELBO, the IWAE estimate of log p(x), −log pdf, −log p of the 8-bit image, its bound
from the density on dequantised data, bits/dim, the IWAE K-curve, and their undefined-rules (no posterior
density, no likelihood, no density of that kind, data the likelihood cannot score).

The likelihoods in the field's units: `nll-discrete` is −log P of the 8-bit image (≥ 0, nats per image), the
number every model with a likelihood is ranked on (bits/dim = nll-discrete / (D ln 2)). A continuous density of
8-bit data is unbounded (a density can pile up on the 256 levels), so `nll-pdf`, −log pdf of the images as they
are, is reported but never ranked. A density is compared only on **uniformly dequantised** data y = (255 x + u)/256,
u ~ U(0, 1)^D (Theis et al. 2016): `nll-dequant` = E_u[−log pdf(y)] + D ln 256 bounds −log P(x) of the discrete
model that integrates the density over the 256 bins [k/256, (k+1)/256) of every value (Jensen), so it is in the
units of nll-discrete and ranks with it. The two discrete numbers are −log P under two discretisations of one
model (nll-discrete integrates the decoder over bins centred on k/255), both bounded by IWAE.

A likelihood is not asked to score data it cannot: the Beta density is 0 at pixel values exactly 0 and 1, and
the Bernoulli is a distribution over binary images; on test images with such values their ELBO and IWAE are
undefined (with the reason), never computed on clamped or grey-level data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from vaecore.data.datasets import Dataset
from vaecore.evaluation.registry import (
    Comparable,
    Direction,
    EvalContext,
    Metric,
    Subject,
    register_metric,
    register_pass,
    undefined_reason,
)
from vaecore.evaluation.runtime import ProgressFn, batches, device_of, seeded
from vaecore.utils import evaluating

GROUP = "likelihood"


# when they are undefined ---------------------------------------------------------------------------
def needs_posterior_density(s: Subject) -> str | None:
    """A bound or estimate of log p(x) needs a posterior density q(z|x)."""
    if not s.caps.elbo:
        return s.caps.why_no_elbo or "the model defines no posterior density q(z|x), so no bound or estimate"
    return None


def needs_likelihood(s: Subject) -> str | None:
    if s.likelihood is None:
        return "the model has no decoder likelihood"
    return None


def needs_continuous_density(s: Subject) -> str | None:
    lik = s.likelihood
    scoring = lik.scoring
    if not scoring.density:
        kind = "discrete (see nll-discrete)" if lik.discrete else "not a normalised density on [0, 1]^D"
        return f"the {lik.name!r} likelihood is {kind}"
    if scoring.zero_density_at_edges and s.dataset is not None and _has_edge_pixels(s.dataset):
        return (f"the {lik.name!r} density is 0 at pixel values exactly 0 and 1, which the test images contain, so "
                "−log pdf is +∞ (the ELBO and IWAE score pixels clamped into the open interval); −log p of the "
                "8-bit images (nll-discrete) is finite")
    return None


def needs_8bit_probability(s: Subject) -> str | None:
    if not s.likelihood.scoring.probability_8bit:
        return f"the {s.likelihood.name!r} likelihood defines no probability of 8-bit images"
    return None


def scores_the_data(s: Subject) -> str | None:
    """The likelihood must assign the test images a probability or density: not a Beta density at pixels exactly 0
    or 1 (zero density), not a Bernoulli on grey levels (a distribution over binary images)."""
    lik, data = s.likelihood, s.dataset
    if lik is None or data is None:
        return None
    if lik.scoring.zero_density_at_edges and _has_edge_pixels(data):
        return (f"the {lik.name!r} density is 0 at pixel values exactly 0 and 1, which the test images contain, so "
                "log p(x|z) = −∞ for every z; it is not computed on clamped pixels, which are other data (−log p of "
                "the 8-bit images, nll-discrete, and the dequantised bound, nll-dequant, are finite)")
    if lik.scoring.binary_only and _has_grey_levels(data):
        return (f"the {lik.name!r} likelihood is a distribution over binary images and the test images have grey "
                "levels: its cross-entropy on them is not a log-probability of the data (binarize the data, e.g. "
                "the reproduction board's test set, to score it)")
    return None


def _has_edge_pixels(dataset: Dataset) -> bool:
    x = dataset.split("test")[0]
    return bool(((x == 0) | (x == 1)).any())


def _has_grey_levels(dataset: Dataset) -> bool:
    x = dataset.split("test")[0]
    return bool(((x != 0) & (x != 1)).any())


def needs_dequantisable_density(s: Subject) -> str | None:
    """A density on [0, 1]^D to integrate over the bins of the dequantised data."""
    lik = s.likelihood
    if not lik.scoring.density:
        kind = "discrete: nll-discrete is already −log P of the 8-bit image" if lik.discrete else \
            "not a density on [0, 1]^D"
        return f"the {lik.name!r} likelihood is {kind}"
    return None


BOUND_RULES = (needs_posterior_density, needs_likelihood)
DATA_RULES = BOUND_RULES + (scores_the_data,)
DEQUANT_SEED_OFFSET = 5

ELBO = register_metric(Metric(
    "elbo", "ELBO", "ELBO", "nats", Direction.HIGHER, GROUP,
    "evidence lower bound E_q[log p(x|z)] − KL, 1 draw of z per image; nats per example (higher is better)",
    pass_name="elbo", undefined=DATA_RULES, per_image=True, comparable=Comparable.SAME_LIKELIHOOD))
IWAE = register_metric(Metric(
    "iwae", "IWAE log-likelihood", "IWAE", "nats", Direction.HIGHER, GROUP,
    "IWAE estimate of log p(x), log (1/K) Σ_k p(x|z_k)p(z_k)/q(z_k|x) with K = iwae_k draws (settings.iwae_k); "
    "nats per example (higher is better), a lower bound in expectation; in the model's own likelihood (a density "
    "or an 8-bit probability), undefined where that likelihood cannot score the test images",
    pass_name="iwae", undefined=DATA_RULES, per_image=True, comparable=Comparable.SAME_LIKELIHOOD))
NLL_PDF = register_metric(Metric(
    "nll-pdf", "−log pdf (not dequantised)", "−log pdf", "nats", Direction.LOWER, GROUP,
    "−log pdf(x) of the continuous density at the 8-bit images themselves, −IWAE(K = iwae_k); nats per example, "
    "can be negative. NEVER ranked: a density of discrete data is unbounded (σ → 0 on exact pixel values earns "
    "−∞); compare nll-dequant or nll-discrete instead. None for discrete and Bernoulli decoders",
    pass_name="iwae", undefined=BOUND_RULES + (needs_continuous_density,), per_image=True,
    comparable=Comparable.NONE))
NLL_DISCRETE = register_metric(Metric(
    "nll-discrete", "−log p of 8-bit images", "−log p", "nats", Direction.LOWER, GROUP,
    "−log P(x) of the 8-bit image, −IWAE(K = iwae_k) with the bin-integrated likelihood; nats per example (≥ 0); "
    "None where the decoder defines no such probability (Bernoulli)",
    pass_name="iwae", undefined=BOUND_RULES + (needs_8bit_probability,), per_image=True))
BPD = register_metric(Metric(
    "bpd", "bits per dimension", "bits/dim", "bits/dim", Direction.LOWER, GROUP,
    "bits per dimension of the 8-bit image: nll-discrete / (D·ln 2)",
    pass_name="iwae", undefined=BOUND_RULES + (needs_8bit_probability,), per_image=True))
NLL_DEQUANT = register_metric(Metric(
    "nll-dequant", "−log p bound from the dequantised density", "−log p (deq.)", "nats", Direction.LOWER, GROUP,
    "E_u[−log pdf((255x + u)/256)] + D ln 256 with u ~ U(0, 1)^D, one u per image and −log pdf by −IWAE(K = "
    "iwae_k): an upper bound on −log P(x) of the 8-bit image under the discrete model the density induces on bins "
    "of width 1/256 (uniform dequantisation, Theis et al. 2016); nats per example, in the units of nll-discrete; "
    "None for discrete and Bernoulli decoders",
    pass_name="dequant", undefined=BOUND_RULES + (needs_dequantisable_density,), per_image=True))


# computations ----------------------------------------------------------------------------------------
def elbo(model: torch.nn.Module, x: Tensor, batch_size: int = 500, seed: int | None = None,
         progress: ProgressFn | None = None) -> Tensor:
    """ELBO per example in nats, (N,), one draw of z per image (the model's own `elbo`).

    `seed` fixes the draws (the global RNG is forked, so other code is not disturbed).
    """
    with evaluating(model), seeded(seed, device_of(model)):
        return torch.cat([model.elbo(x[s]).double().cpu() for s in batches(x.shape[0], batch_size, "elbo", progress)])


def iwae_terms(model: torch.nn.Module, x: Tensor, k: int, terms: tuple[str, ...], batch_size: int,
               chunk: int | None, generator: torch.Generator | None, progress: ProgressFn | None,
               stage: str) -> dict[str, Tensor | None]:
    """IWAE log-likelihood estimates (N,) per term, streaming K in chunks with a running logsumexp."""
    if k < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {k}")
    if not model.capabilities.elbo:
        raise ValueError(f"importance weighting needs a posterior density; {undefined_reason(model, 'iwae')}")
    device = device_of(model)
    if chunk is None:
        chunk = max(1, (16384 if device.type == "cuda" else 1024) // max(1, min(batch_size, x.shape[0])))
    results: dict[str, list[Tensor] | None] = {t: [] for t in terms}
    with evaluating(model):
        for s in batches(x.shape[0], batch_size, stage, progress):
            xb = x[s].to(device, torch.float32)
            q = model.posterior(xb)
            acc = {t: torch.full((xb.shape[0],), -math.inf, dtype=torch.float64, device=device) for t in terms}
            for start in range(0, k, chunk):
                lw = model.log_importance_weights(xb, min(chunk, k - start), generator, scores=terms, posterior=q)
                for t, w in lw.items():
                    if w is None:
                        results[t] = None
                    elif results[t] is not None:
                        acc[t] = torch.logaddexp(acc[t], torch.logsumexp(w.double(), dim=0))
            for t in terms:
                if results[t] is not None:
                    results[t].append((acc[t] - math.log(k)).cpu())
    return {t: None if v is None else torch.cat(v) for t, v in results.items()}


def iwae_log_likelihood(model: torch.nn.Module, x: Tensor, k: int = 1000, batch_size: int = 100,
                        chunk: int | None = None, generator: torch.Generator | None = None,
                        progress: ProgressFn | None = None, discrete: bool = False) -> Tensor:
    """IWAE estimate log (1/K) Σ_k w_k of log p(x) per example, (N,) float64, in nats.

    Examples go through in batches of `batch_size`; the K draws go through the decoder `chunk` at
    a time (chunk·batch_size latents per pass; default about 1k on CPU, 16k on CUDA), combined
    with a running logsumexp, so memory does not grow with K. `discrete=True` scores each draw
    with −log P of the 8-bit image (`Likelihood.nll_discrete`); ValueError if undefined.
    The estimate is a lower bound on log p(x) in expectation, tightening as K grows.
    """
    term = "nll_discrete" if discrete else "nll"
    out = iwae_terms(model, x, k, (term,), batch_size, chunk, generator, progress, "iwae")[term]
    if out is None:
        raise ValueError(f"the {model.likelihood.name!r} likelihood defines no probability of 8-bit images")
    return out


def nll_pdf(model: torch.nn.Module, x: Tensor, k: int = 1000, batch_size: int = 100, chunk: int | None = None,
            generator: torch.Generator | None = None, progress: ProgressFn | None = None) -> Tensor | None:
    """−log pdf(x) per example in nats, estimated as −IWAE(K); None unless the decoder is a continuous density."""
    if undefined_reason(model, "nll-pdf") is not None:
        return None
    return -iwae_log_likelihood(model, x, k, batch_size, chunk, generator, progress)


def nll_discrete(model: torch.nn.Module, x: Tensor, k: int = 1000, batch_size: int = 100, chunk: int | None = None,
                 generator: torch.Generator | None = None, progress: ProgressFn | None = None) -> Tensor | None:
    """−log P(8-bit x) per example in nats: −IWAE(K) with the bin-integrated likelihood; None where undefined."""
    if undefined_reason(model, "nll-discrete") is not None:
        return None
    out = iwae_terms(model, x, k, ("nll_discrete",), batch_size, chunk, generator, progress, "nll-discrete")
    return None if out["nll_discrete"] is None else -out["nll_discrete"]


def bits_per_dim(nll_discrete_nats: float | Tensor, d: int) -> float:
    """Bits per dimension from −log P of the 8-bit image in nats (mean over examples if a tensor)."""
    value = float(nll_discrete_nats.double().mean()) if isinstance(nll_discrete_nats, Tensor) else nll_discrete_nats
    return float(value) / (int(d) * math.log(2))


# the passes ------------------------------------------------------------------------------------------
@register_pass("iwae")
def _iwae_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    """IWAE, nll-pdf, nll-discrete and bpd from one pass of K = iwae_k draws per image."""
    lik = ctx.likelihood
    terms = ("nll",) if {"iwae", "nll-pdf"} & set(wanted) or lik.discrete else ()
    if {"nll-discrete", "bpd"} & set(wanted) and not lik.discrete:
        terms += ("nll_discrete",)
    ll = iwae_terms(ctx.model, ctx.x, ctx.iwae_k, terms, min(ctx.batch_size, 100), None, ctx.generator(0),
                    ctx.progress, f"iwae (K={ctx.iwae_k})")
    log_p = ll.get("nll")
    log_p8 = log_p if lik.discrete else ll.get("nll_discrete")
    d = math.prod(ctx.dataset.shape)
    for m in wanted:
        if m == "iwae":
            ctx.out[m], ctx.per_image[m] = float(log_p.mean()), log_p
        elif m == "nll-pdf":
            ctx.out[m], ctx.per_image[m] = float(-log_p.mean()), -log_p
        elif log_p8 is None:
            ctx.out[m], ctx.notes[m] = None, f"the {lik.name!r} likelihood returned no 8-bit probability"
        elif m == "nll-discrete":
            ctx.out[m], ctx.per_image[m] = float(-log_p8.mean()), -log_p8
        else:
            ctx.out[m], ctx.per_image[m] = bits_per_dim(-log_p8, d), -log_p8 / (d * math.log(2))


def dequantise(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """y = (255 x + u)/256 with u ~ U(0, 1) per value, as float32 strictly inside (0, 1): a y that float32 would
    round to 1 (u within 2⁻¹⁶ of 1 at the top level) is kept at the largest float32 below 1."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float64)
    y = ((torch.round(x.double() * 255) + u) / 256).float()
    return y.clamp(torch.finfo(torch.float32).tiny, 1 - 2.0 ** -24)


def nll_dequantised(model: torch.nn.Module, x: Tensor, k: int = 1000, batch_size: int = 100,
                    generator: torch.Generator | None = None, progress: ProgressFn | None = None) -> Tensor:
    """Per image, −IWAE(K) of the density at one uniform dequantisation of x, plus D ln 256: an upper bound (in
    expectation) on −log P of the 8-bit image under the density integrated over bins of width 1/256; (N,) nats.
    ValueError where the decoder is not a density."""
    reason = undefined_reason(model, "nll-dequant")
    if reason:
        raise ValueError(f"the dequantised bound is undefined: {reason}")
    y = dequantise(x.to(device_of(model)), generator)
    ll = iwae_terms(model, y, k, ("nll_interior",), batch_size, None, generator, progress,
                    f"dequantised iwae (K={k})")["nll_interior"]
    d = math.prod(x.shape[1:])
    return -ll + d * math.log(256)


def iwae_k_curve(model: torch.nn.Module, x: Tensor, ks: Sequence[int] = (1, 10, 100, 1000, 5000),
                 discrete: bool = False, batch_size: int = 20, generator: torch.Generator | None = None,
                 progress: ProgressFn | None = None) -> dict[int, Tensor]:
    """IWAE estimates of log p(x) per image at each K of `ks` from ONE sequence of max(ks) draws per image: the
    estimate at K uses the first K draws (nested), so the curve shows how the bound tightens with K.
    `discrete=True` scores −log P of the 8-bit image. {K: (N,) float64 in nats}."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > 100_000:
        raise ValueError(f"K must be between 1 and 100000, got {ks}")
    if not model.capabilities.elbo:
        raise ValueError(f"importance weighting needs a posterior density; {undefined_reason(model, 'iwae')}")
    term = "nll_discrete" if discrete else "nll"
    device = device_of(model)
    out: dict[int, list[Tensor]] = {k: [] for k in ks}
    with evaluating(model):
        for s in batches(x.shape[0], batch_size, "K-curve", progress):
            xb = x[s].to(device, torch.float32)
            q = model.posterior(xb)
            acc = torch.full((xb.shape[0],), -math.inf, dtype=torch.float64, device=device)
            done = 0
            for k in ks:
                while done < k:
                    step = min(k - done, max(1, 2048 // xb.shape[0]))
                    w = model.log_importance_weights(xb, step, generator, scores=(term,), posterior=q)[term]
                    if w is None:
                        raise ValueError(f"the {model.likelihood.name!r} likelihood defines no 8-bit probability")
                    acc = torch.logaddexp(acc, torch.logsumexp(w.double(), dim=0))
                    done += step
                out[k].append((acc - math.log(k)).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def discrete_breakdown(model: torch.nn.Module, x: Tensor, batch_size: int = 200,
                       generator: torch.Generator | None = None) -> dict[str, Tensor] | None:
    """Where the nats of −log p go: per image, the −log P(x|z) of the black pixels (level 0), the white ones (255) and
    the grey ones, at one draw z ~ q(z|x), and KL(q(z|x) ‖ p(z)) (closed form, else the draw's log q − log p); their
    sum is −ELBO of the 8-bit likelihood, an upper bound on −log p that IWAE tightens. Also the count of each kind
    of pixel. None where the likelihood does not split −log P by value or the model has no posterior density."""
    lik = getattr(model, "likelihood", None)
    if lik is None or not model.capabilities.elbo or undefined_reason(model, "nll-discrete") is not None:
        return None
    device = device_of(model)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("black", "white", "grey", "kl", "n_black", "n_white", "n_grey")}
    with evaluating(model):
        for s in batches(x.shape[0], batch_size, "breakdown", None):
            xb = x[s].to(device, torch.float32)
            q = model.posterior(xb)
            z = q.rsample(generator=generator)
            values = lik.nll_discrete_values(model.decode_params(z), xb)
            if values is None:
                return None
            kl = q.kl(model.prior)
            kl = kl if kl is not None else q.log_prob(z) - model.prior_log_prob(z)
            k = torch.round(xb * 255)
            masks = {"black": k == 0, "white": k == 255, "grey": (k > 0) & (k < 255)}
            for name, m in masks.items():
                parts[name].append((values.double() * m).flatten(1).sum(1).cpu())
                parts[f"n_{name}"].append(m.flatten(1).sum(1).double().cpu())
            parts["kl"].append(kl.double().cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


@register_pass("dequant")
def _dequant_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    values = nll_dequantised(ctx.model, ctx.x, ctx.iwae_k, min(ctx.batch_size, 100),
                             ctx.generator(DEQUANT_SEED_OFFSET), ctx.progress)
    ctx.out["nll-dequant"], ctx.per_image["nll-dequant"] = float(values.mean()), values


@register_pass("elbo")
def _elbo_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    values = elbo(ctx.model, ctx.x, ctx.batch_size, seed=ctx.seed, progress=ctx.progress)
    ctx.out["elbo"], ctx.per_image["elbo"] = float(values.mean()), values

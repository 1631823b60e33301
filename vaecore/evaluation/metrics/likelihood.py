"""Likelihood metrics: the ELBO, the IWAE estimate of log p(x), −log pdf, −log p of the 8-bit image and
bits/dim, and their undefined-rules (no posterior density, no likelihood, no density of that kind).

Two likelihood numbers are kept apart (the σ-VAE paper, Rybkin et al. 2021, reports both in its Table 4):
`nll-pdf` is −log of a continuous density on [0, 1]^D (can be negative), `nll-discrete` is −log P of the 8-bit
image (≥ 0). The two are not related by a
constant on MNIST: −log P ≈ −log pdf + D·ln 255 needs every pixel inside (0, 1) with a density smooth over its
bin, but the discretized likelihoods give the edge bins (pixels exactly 0 or 1, most of an MNIST image) the
whole tail mass beyond them, and a density that is zero at the edges (Beta) has no finite −log pdf there.
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
from vaecore.evaluation.runtime import ProgressFn, batches, channels_last_on_cpu, device_of, seeded
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


def _has_edge_pixels(dataset: Dataset) -> bool:
    x = dataset.split("test")[0]
    return bool(((x == 0) | (x == 1)).any())


BOUND_RULES = (needs_posterior_density, needs_likelihood)

ELBO = register_metric(Metric(
    "elbo", "ELBO", "ELBO", "nats", Direction.HIGHER, GROUP,
    "evidence lower bound E_q[log p(x|z)] − KL, 1 draw of z per image; nats per example (higher is better)",
    pass_name="elbo", undefined=BOUND_RULES, per_image=True, comparable=Comparable.SAME_LIKELIHOOD))
IWAE = register_metric(Metric(
    "iwae", "IWAE log-likelihood", "IWAE", "nats", Direction.HIGHER, GROUP,
    "IWAE estimate of log p(x), log (1/K) Σ_k p(x|z_k)p(z_k)/q(z_k|x) with K = iwae_k draws; nats per example "
    "(higher is better); in the model's own likelihood (density, 8-bit probability, or Bernoulli cross-entropy on "
    "grey values)",
    pass_name="iwae", undefined=BOUND_RULES, per_image=True, comparable=Comparable.SAME_LIKELIHOOD))
NLL_PDF = register_metric(Metric(
    "nll-pdf", "−log pdf", "−log pdf", "nats", Direction.LOWER, GROUP,
    "−log pdf(x) of the continuous density on [0,1]^D, estimated as −IWAE(K = iwae_k) (an upper bound in "
    "expectation); nats per example, can be negative; None for discrete and Bernoulli decoders",
    pass_name="iwae", undefined=BOUND_RULES + (needs_continuous_density,), per_image=True,
    comparable=Comparable.SAME_LIKELIHOOD))
NLL_DISCRETE = register_metric(Metric(
    "nll-discrete", "−log p of 8-bit images", "−log p", "nats", Direction.LOWER, GROUP,
    "−log P(x) of the 8-bit image, −IWAE(K = iwae_k) with the bin-integrated likelihood; nats per example (≥ 0); "
    "None where the decoder defines no such probability (Bernoulli)",
    pass_name="iwae", undefined=BOUND_RULES + (needs_8bit_probability,), per_image=True))
BPD = register_metric(Metric(
    "bpd", "bits per dimension", "bits/dim", "bits/dim", Direction.LOWER, GROUP,
    "bits per dimension of the 8-bit image: nll-discrete / (D·ln 2)",
    pass_name="iwae", undefined=BOUND_RULES + (needs_8bit_probability,), per_image=True))


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
    with evaluating(model), channels_last_on_cpu(model):
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


@register_pass("elbo")
def _elbo_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    values = elbo(ctx.model, ctx.x, ctx.batch_size, seed=ctx.seed, progress=ctx.progress)
    ctx.out["elbo"], ctx.per_image["elbo"] = float(values.mean()), values

"""Latent-usage metrics: active units, KL per latent dimension and the mutual information I(x; z) under q —
how much of the latent space a model uses, and posterior collapse."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from vaecore.components.posteriors import DiagonalGaussian, diag_normal_log_prob
from vaecore.evaluation.metrics.representation import latent_means
from vaecore.evaluation.registry import (
    Direction,
    EvalContext,
    Metric,
    Subject,
    register_metric,
    register_pass,
    undefined_reason,
)
from vaecore.evaluation.runtime import ProgressFn, batches
from vaecore.utils import evaluating

ACTIVE_THRESHOLD = 0.01
COLLAPSED_KL = 0.01  # nats: a latent dimension carrying less KL than this is collapsed
MI_MIXTURE = 10_000  # test images whose posteriors make the mixture q(z) of the mutual information
MI_SATURATED = 0.95  # an estimate above this fraction of its ln N ceiling is reported as saturated
GROUP = "latent usage"


def needs_gaussian_posterior(s: Subject) -> str | None:
    caps = s.caps
    if not caps.diagonal_gaussian_posterior:
        if caps.deterministic_encoder or not caps.elbo:
            return caps.why_no_elbo or "the encoder is deterministic: there is no q(z|x)"
        return f"it needs a diagonal-Gaussian posterior; this model's is {caps.posterior.value!r}"
    return None


def needs_standard_normal_prior(s: Subject) -> str | None:
    if not s.caps.standard_normal_prior:
        return f"the KL to the {s.caps.prior.value} prior does not split over latent dimensions"
    return None


def needs_density_posterior_and_prior(s: Subject) -> str | None:
    caps = s.caps
    if not caps.elbo:
        return caps.why_no_elbo or "the model defines no posterior density q(z|x)"
    if getattr(s.model, "prior", None) is None:
        return "the model has no prior density p(z)"
    return None


KL_DRAWS = 16  # Monte Carlo draws per image where KL(q ‖ p) has no closed form

KL = register_metric(Metric(
    "kl", "KL(q(z|x) ‖ p(z))", "KL", "nats", Direction.NONE, GROUP,
    "the rate: KL of each test image's posterior to the model's prior, in nats, closed form where one is "
    f"registered (Gaussian to N(0, I)), else the mean of log q(z|x) − log p(z) over {KL_DRAWS} draws; the mean over "
    "images bounds I(x; z) from above",
    pass_name="kl", undefined=(needs_density_posterior_and_prior,), per_image=True))
ACTIVE_UNITS = register_metric(Metric(
    "active-units", "active units", "active", "dimensions", Direction.NONE, GROUP,
    f"count of latent dimensions with Cov_x(E_q[z_j]) > {ACTIVE_THRESHOLD} (Burda et al.), out of d",
    pass_name="active-units"))
KL_PER_DIM = register_metric(Metric(
    "kl-per-dim", "KL per latent dimension", "KL/dim", "nats", Direction.NONE, GROUP,
    "list of d values E_x KL(q(z_j|x) ‖ N(0,1)) in nats; they sum to the mean KL (N(0, I) prior only); "
    f"kl-per-dim_total is the sum, kl-per-dim_collapsed counts dimensions under {COLLAPSED_KL} nats (collapsed, "
    "whatever active-units says)",
    pass_name="kl-per-dim", undefined=(needs_gaussian_posterior, needs_standard_normal_prior),
    extras={"kl-per-dim_total": "the sum over dimensions: the mean KL(q(z|x) ‖ N(0, I)), nats",
            "kl-per-dim_collapsed": f"how many dimensions carry under {COLLAPSED_KL} nats"}))
MUTUAL_INFO = register_metric(Metric(
    "mutual-info", "mutual information I(x; z)", "I(x; z)", "nats", Direction.NONE, GROUP,
    "I(x; z) under q: E_x E_q[log q(z|x)] − E_q[log q(z)], q(z) the mixture of the posteriors of the first "
    f"{MI_MIXTURE:,} test images, 1 draw per evaluated image; nats. It cannot exceed mutual-info_bound = "
    f"ln(mixture size): above {MI_SATURATED:.0%} of it, mutual-info_saturated is true (the images' posteriors "
    "hardly overlap) and the value ranks nothing. mutual-info_rate = E_x KL(q(z|x) ‖ N(0, I)) bounds I(x; z) from "
    "above",
    pass_name="mutual-info", undefined=(needs_gaussian_posterior,),
    extras={"mutual-info_bound": "ln of the mixture size: the most the estimate can reach",
            "mutual-info_saturated": f"true above {MI_SATURATED:.0%} of the bound: the value ranks nothing",
            "mutual-info_rate": "E_x KL(q(z|x) ‖ N(0, I)), an upper bound on I(x; z) (None without that prior)"}))


def posterior_moments(model: torch.nn.Module, x: Tensor, batch_size: int = 1000,
                      progress: ProgressFn | None = None, stage: str = "encode") -> tuple[Tensor, Tensor]:
    """(μ, log σ²) of a diagonal-Gaussian posterior for every image."""
    mus, logvars = [], []
    with evaluating(model):
        for s in batches(x.shape[0], batch_size, stage, progress):
            q = model.posterior(x[s])
            if not isinstance(q, DiagonalGaussian):
                raise ValueError(f"this needs a diagonal-Gaussian posterior; the model's is {type(q).__name__}")
            mus.append(q.mu.float())
            logvars.append(q.logvar.float())
    return torch.cat(mus), torch.cat(logvars)


def kl_per_dimension(model: torch.nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """E_x KL(q(z_j|x) ‖ N(0, 1)) per latent dimension, (d,) in nats; sums to the mean KL.

    Near-zero entries are collapsed dimensions. Needs a stochastic encoder and the N(0, I) prior: a
    ValueError with the registry's reason otherwise.
    """
    reason = undefined_reason(model, "kl-per-dim")
    if reason:
        raise ValueError(f"KL per dimension is undefined: {reason}")
    mu, logvar = posterior_moments(model, x, batch_size)
    return DiagonalGaussian(mu.double(), logvar.double()).kl_per_dimension().mean(dim=0).cpu()


def active_units(model: torch.nn.Module, x: Tensor, threshold: float = ACTIVE_THRESHOLD,
                 batch_size: int = 1000) -> int:
    """Number of latent dimensions whose posterior mean varies across x: Cov_x(E_q[z_j]) > threshold."""
    mu = latent_means(model, x, batch_size).double()
    if mu.shape[0] < 2:
        raise ValueError("active units need at least 2 images")
    return int((mu.var(dim=0, unbiased=True) > threshold).sum())


def mutual_information(model: torch.nn.Module, x: Tensor, batch_size: int = 1000,
                       generator: torch.Generator | None = None, progress: ProgressFn | None = None,
                       mixture: Tensor | None = None) -> float:
    """I(x; z) under q in nats: E_x E_q[log q(z|x)] − E_q(z)[log q(z)] (as in He et al., 2019).

    Both terms are evaluated at one draw z_i ~ q(z|x_i) per image of `x`; q(z) is the mixture
    (1/N) Σ_n q(z|x_n) over the N images of `mixture` (default: `x` itself), which must start with
    `x`. Each term log q(z_i|x_i) − log q(z_i) is then at most ln N (the mixture holds q(z|x_i)), so
    the estimate, the mutual information of the N-image empirical distribution, never exceeds ln N:
    near it, it is saturated. Equal posteriors give exactly 0.
    """
    reason = undefined_reason(model, "mutual-info")
    if reason:
        raise ValueError(f"mutual information is undefined: {reason}")
    mixture = x if mixture is None else mixture
    if mixture.shape[0] < x.shape[0] or not torch.equal(mixture[:x.shape[0]], x):
        raise ValueError("the mixture images must start with the evaluated images")
    mu_all, logvar_all = posterior_moments(model, mixture, batch_size, progress, "mutual-info (encode)")
    mu_all, logvar_all = mu_all.double(), logvar_all.double()
    n_mix, d = mu_all.shape
    mu, logvar = mu_all[:x.shape[0]], logvar_all[:x.shape[0]]
    n = mu.shape[0]
    z = DiagonalGaussian(mu.float(), logvar.float()).rsample(generator=generator).double()
    neg_entropy = diag_normal_log_prob(z, mu, logvar).mean()  # at the draw: 0 for equal posteriors, ≤ ln N
    # log q(z_i) = logsumexp_n log q(z_i|x_n) − ln N, streamed over blocks of rows × mixture components
    # (about 2²² values each: the (rows, N, d) tensor of one pass was gigabytes at d = 256)
    cols = min(n_mix, 1024)
    rows = max(1, (1 << 22) // (cols * d))
    log_qz = []
    for s in batches(n, rows, "mutual-info", progress):
        zs = z[s].unsqueeze(1)
        acc = torch.full((zs.shape[0],), -math.inf, dtype=torch.float64, device=zs.device)
        for c in range(0, n_mix, cols):
            lp = diag_normal_log_prob(zs, mu_all[c:c + cols].unsqueeze(0), logvar_all[c:c + cols].unsqueeze(0))
            acc = torch.logaddexp(acc, torch.logsumexp(lp, dim=1))
        log_qz.append(acc - math.log(n_mix))
    return float(neg_entropy - torch.cat(log_qz).mean())


def kl_per_image(model: torch.nn.Module, x: Tensor, batch_size: int = 500,
                 generator: torch.Generator | None = None, progress: ProgressFn | None = None) -> Tensor:
    """KL(q(z|x) ‖ p(z)) per image in nats, (N,) float64: closed form where registered, else a Monte Carlo mean
    over KL_DRAWS draws."""
    reason = undefined_reason(model, "kl")
    if reason:
        raise ValueError(f"KL is undefined: {reason}")
    out = []
    with evaluating(model):
        for s in batches(x.shape[0], batch_size, "kl", progress):
            q = model.posterior(x[s])
            kl = q.kl(model.prior)
            if kl is None:
                z = q.rsample(KL_DRAWS, generator=generator)
                kl = (q.log_prob(z) - model.prior_log_prob(z)).double().mean(dim=0)
            out.append(kl.double().cpu())
    return torch.cat(out)


@register_pass("kl")
def _kl_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    values = kl_per_image(ctx.model, ctx.x, ctx.batch_size, ctx.generator(6), ctx.progress)
    ctx.out["kl"], ctx.per_image["kl"] = float(values.mean()), values


@register_pass("active-units")
def _active_units_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    ctx.out["active-units"] = active_units(ctx.model, ctx.x, ACTIVE_THRESHOLD, ctx.batch_size)


@register_pass("kl-per-dim")
def _kl_per_dim_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    kl = kl_per_dimension(ctx.model, ctx.x, ctx.batch_size)
    ctx.out["kl-per-dim"] = [float(v) for v in kl]
    ctx.out["kl-per-dim_total"] = float(kl.sum())
    ctx.out["kl-per-dim_collapsed"] = int((kl < COLLAPSED_KL).sum())


@register_pass("mutual-info")
def _mutual_info_pass(ctx: EvalContext, wanted: Sequence[str]) -> None:
    x_all = ctx.dataset.split("test")[0]
    mixture = x_all[:max(MI_MIXTURE, ctx.x.shape[0])]
    value = mutual_information(ctx.model, ctx.x, ctx.batch_size, ctx.generator(1), ctx.progress, mixture)
    bound = math.log(mixture.shape[0])
    ctx.out["mutual-info"] = value
    ctx.out["mutual-info_bound"] = bound
    ctx.out["mutual-info_saturated"] = value >= MI_SATURATED * bound
    rate = ctx.out.get("kl-per-dim_total")
    if rate is None and undefined_reason(ctx.model, "kl-per-dim") is None:
        rate = float(kl_per_dimension(ctx.model, ctx.x, ctx.batch_size).sum())
    ctx.out["mutual-info_rate"] = rate

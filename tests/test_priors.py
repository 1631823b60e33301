"""The VampPrior's mixture density against torch.distributions, in float64."""

from __future__ import annotations

import math

import torch
from torch import distributions as D

from vaecore.components.priors import diag_mixture_log_prob


def test_diag_mixture_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    k, d = 7, 5
    mu = torch.randn(k, d, generator=g, dtype=torch.float64) * 2
    logvar = torch.rand(k, d, generator=g, dtype=torch.float64) * 12 - 10  # σ² from e^-10 to e^2
    z = mu[torch.randint(k, (3, 4), generator=g)] + 0.1 * torch.randn(3, 4, d, generator=g, dtype=torch.float64)
    mix = D.MixtureSameFamily(D.Categorical(logits=torch.zeros(k, dtype=torch.float64)),
                              D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1))
    got = diag_mixture_log_prob(z, mu, logvar)
    assert got.shape == (3, 4) and got.dtype == torch.float64
    torch.testing.assert_close(got, mix.log_prob(z), rtol=1e-10, atol=1e-8)


def test_float32_inputs_are_scored_in_float64():
    """Near a sharp component the expanded square cancels; the float64 product keeps the float32 answer exact to
    float32 rounding of the inputs."""
    mu = torch.tensor([[3.0, -2.0]])
    logvar = torch.tensor([[-9.0, -9.0]])
    z = mu + torch.tensor([[1e-3, -2e-3]])
    want = -0.5 * (((z.double() - mu.double()) ** 2 / logvar.double().exp() + logvar.double()).sum()
                   + 2 * math.log(2 * math.pi))
    got = diag_mixture_log_prob(z, mu, logvar)
    assert got.dtype == torch.float32
    assert abs(float(got) - float(want)) <= 1e-5 * abs(float(want)) + 1e-4

"""The typed kinds a model's capabilities report: its posterior, its prior and its latent geometry.

A caller tests these (or the `Capabilities` flags built on them) instead of parsing a string: a metric's
undefined-rule asks `caps.diagonal_gaussian_posterior and caps.standard_normal_prior`, the app's KL chart the
same. The values are the strings older code and stored notes used, so a note that names a kind reads the same.
"""

from __future__ import annotations

import enum


class PosteriorKind(enum.StrEnum):
    """What q(z|x) is."""

    GAUSSIAN = "gaussian"  # a diagonal Gaussian N(μ(x), diag σ²(x))
    POINT = "point"  # a deterministic encoder: no density
    VON_MISES_FISHER = "von-mises-fisher"  # on the hypersphere
    WRAPPED_NORMAL = "wrapped-normal"  # on the Poincaré ball
    FLOW = "flow"  # a diagonal Gaussian pushed through a normalising flow
    HAMILTONIAN = "hamiltonian"  # refined by leapfrog steps (HVAE)
    RIEMANNIAN_HAMILTONIAN = "riemannian-hamiltonian"  # leapfrog steps under a learned metric (RHVAE)
    VECTOR_QUANTISED = "vector-quantised"  # a nearest-code lookup: no density


class PriorKind(enum.StrEnum):
    """What p(z) is (the class name of the prior, as notes have always named it)."""

    STANDARD_NORMAL = "StandardNormal"
    VAMP = "VampPrior"
    HYPERSPHERICAL_UNIFORM = "HypersphericalUniform"
    WRAPPED_NORMAL = "WrappedNormalPrior"
    UNIFORM_CODES = "uniform-codes"  # no learned prior over a codebook's codes (sampling needs a fitted one)


class Geometry(enum.StrEnum):
    """The space the latents live in."""

    EUCLIDEAN = "euclidean"
    SPHERE = "sphere"
    POINCARE_BALL = "poincare-ball"
    DISCRETE = "discrete"

"""A Gaussian mixture fitted to the training latents (Ghosh et al.; AR-ELBO's GMM-10)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from vaecore.samplers.base import Progress, Sampler, expect_shapes


class GMMSampler(Sampler):
    """Gaussian mixture with full covariances fitted by EM (scikit-learn), as in Ghosh et al.'s RAE.

    Only the weights, means and covariances are kept, and sampling is done in torch, so a
    loaded sampler needs no scikit-learn object.
    """

    name = "gmm"
    description = "Gaussian mixture (full covariance, EM) fitted on the training latent means"

    def __init__(self, components: int = 10, max_iter: int = 200, reg_covar: float = 1e-6) -> None:
        super().__init__()
        if int(components) < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        self.components = int(components)
        self.max_iter = int(max_iter)
        self.reg_covar = float(reg_covar)
        self.weights = torch.zeros(0)
        self.means = torch.zeros(0)
        self.covariances = torch.zeros(0)

    def settings(self) -> dict[str, Any]:
        return {"components": self.components, "max_iter": self.max_iter, "reg_covar": self.reg_covar}

    def _fit(self, z: torch.Tensor, seed: int, progress: Progress | None) -> None:
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        k = min(self.components, z.shape[0])
        if progress:
            progress(0.0, f"fitting a {k}-component GMM on {z.shape[0]} latents")
        gmm = GaussianMixture(k, covariance_type="full", max_iter=self.max_iter, reg_covar=self.reg_covar,
                              random_state=seed)
        with warnings.catch_warnings(), threadpool_limits(1):  # BLAS threads only slow EM's tiny d×d solves
            warnings.filterwarnings("ignore", message=".*did not converge.*")
            gmm.fit(z.cpu().double().numpy())
        self.weights = torch.as_tensor(gmm.weights_, dtype=torch.float64)
        self.means = torch.as_tensor(gmm.means_, dtype=torch.float64)
        self.covariances = torch.as_tensor(gmm.covariances_, dtype=torch.float64)
        self._prepare()
        self.to(self.device)
        if progress:
            progress(1.0, "GMM fitted")

    def _prepare(self) -> None:
        self._scale_tril = torch.linalg.cholesky(self.covariances.double().cpu()).float()
        self._weights = (self.weights / self.weights.sum()).float().cpu()
        self._means = self.means.float().cpu()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        k = torch.multinomial(self._weights.to(device), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.latent_dim, 1, generator=generator, device=device)
        z = self._means.to(device)[k] + (self._scale_tril.to(device)[k] @ eps).squeeze(-1)
        return z

    @torch.no_grad()
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log of the mixture density per row."""
        comps = torch.distributions.MultivariateNormal(self._means.to(z.device),
                                                       scale_tril=self._scale_tril.to(z.device))
        lp = comps.log_prob(z.unsqueeze(-2)) + self._weights.to(z.device).log()
        return torch.logsumexp(lp, dim=-1)

    def _state(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        k = tensors.get("weights", torch.zeros(0)).shape[0]
        d = self.latent_dim or 0
        expect_shapes(tensors, {"weights": (k,), "means": (k, d), "covariances": (k, d, d)})
        fitted_on = self.fit_info.get("n_train")
        expected = min(self.components, fitted_on) if isinstance(fitted_on, int) else self.components
        if k != expected:
            raise ValueError(f"the tensors hold {k} components, the settings say {expected}")
        if k < 1 or (tensors["weights"] < 0).any():
            raise ValueError("the mixture weights are empty or negative")
        self.weights, self.means, self.covariances = tensors["weights"], tensors["means"], tensors["covariances"]
        self._prepare()

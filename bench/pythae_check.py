"""Check differences from Pythae 0.1.2 at runtime, on identical inputs (docs/pythae-differences.md).

    .venv-pythae/bin/python bench/pythae_check.py pythae > pythae.json   # Pythae's side, in its own virtualenv
    python bench/pythae_check.py ours --pythae pythae.json                # ours on the same inputs, and the verdicts

Both sides draw their inputs from numpy's PCG64 with seed 0 (the same numbers in both interpreters). Pythae's side
calls Pythae's own loss functions, samplers and pipeline; ours calls vaecore's likelihoods, quantiser and bounds;
the second command prints each difference as measured.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

B, D, LATENT, K, M = 4, 784, 16, 5, 3


def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.random((B, 1, 28, 28)).astype(np.float32),
            "recon": rng.random((B, 1, 28, 28)).astype(np.float32) * 0.98 + 0.01,
            "recon_k": rng.random((B, K, D)).astype(np.float32) * 0.98 + 0.01,
            "mu": rng.normal(size=(B, LATENT)).astype(np.float32),
            "log_var": rng.normal(-1, 0.3, size=(B, LATENT)).astype(np.float32),
            "eps_k": rng.normal(size=(B, K, LATENT)).astype(np.float32),
            "recon_mk": rng.random((B, M, K, D)).astype(np.float32) * 0.98 + 0.01,
            "eps_mk": rng.normal(size=(B, M, K, LATENT)).astype(np.float32),
            "z_vq": rng.normal(size=(B, LATENT, 7, 7)).astype(np.float32),
            "codebook": rng.normal(size=(32, LATENT)).astype(np.float32)}


def pythae_side() -> dict[str, object]:
    import torch
    from pythae.models import (
        AE,
        HVAE,
        IWAE,
        MIWAE,
        RAE_L2,
        RHVAE,
        VAE,
        AEConfig,
        HVAEConfig,
        IWAEConfig,
        MIWAEConfig,
        RAE_L2_Config,
        RHVAEConfig,
        VAEConfig,
        VQVAEConfig,
    )
    from pythae.pipelines import TrainingPipeline

    t = {k: torch.from_numpy(v) for k, v in inputs().items()}
    shape = (1, 28, 28)
    out: dict[str, object] = {}
    vae = VAE(VAEConfig(input_dim=shape, latent_dim=LATENT, reconstruction_loss="mse"))
    out["vae_mse"] = float(vae.loss_function(t["recon"], t["x"], t["mu"], t["log_var"], t["mu"])[1])
    ae = AE(AEConfig(input_dim=shape, latent_dim=LATENT))
    out["ae_mse"] = float(ae.loss_function(t["recon"], t["x"]))
    # IWAE: the logged loss at given draws, and the bound at the same draws
    iwae = IWAE(IWAEConfig(input_dim=shape, latent_dim=LATENT, number_samples=K, reconstruction_loss="bce"))
    mu_k, lv_k = t["mu"].unsqueeze(1).repeat(1, K, 1), t["log_var"].unsqueeze(1).repeat(1, K, 1)
    z_k = mu_k + t["eps_k"] * (0.5 * lv_k).exp()
    out["iwae_loss"] = float(iwae.loss_function(t["recon_k"], t["x"], mu_k, lv_k, z_k)[0])
    miwae = MIWAE(MIWAEConfig(input_dim=shape, latent_dim=LATENT, number_samples=K, number_gradient_estimates=M,
                              reconstruction_loss="bce"))
    mu_mk = t["mu"][:, None, None].repeat(1, M, K, 1)
    lv_mk = t["log_var"][:, None, None].repeat(1, M, K, 1)
    z_mk = mu_mk + t["eps_mk"] * (0.5 * lv_mk).exp()
    out["miwae_loss"] = float(miwae.loss_function(t["recon_mk"], t["x"], mu_mk, lv_mk, z_mk)[0])
    from pythae.models.vq_vae.vq_vae_utils import Quantizer

    cfg = VQVAEConfig(input_dim=shape, latent_dim=LATENT, num_embeddings=32, commitment_loss_factor=0.25,
                      quantization_loss_factor=1.0)
    cfg.embedding_dim = LATENT  # what VQVAE sets from its encoder's output channels
    quantizer = Quantizer(cfg)
    with torch.no_grad():
        quantizer.embeddings.weight.copy_(t["codebook"])
    out["vq_loss"] = float(quantizer(t["z_vq"].permute(0, 2, 3, 1)).loss.detach())
    out["hvae_beta_zero_sqrt"] = float(HVAE(HVAEConfig(input_dim=shape, latent_dim=2, beta_zero=0.3)).beta_zero_sqrt)
    out["rhvae_beta_zero_sqrt"] = float(RHVAE(RHVAEConfig(input_dim=shape, latent_dim=2, beta_zero=0.3))
                                        .beta_zero_sqrt)
    pipeline = TrainingPipeline(model=RAE_L2(RAE_L2_Config(input_dim=shape, latent_dim=2, reg_weight=1e-3)))
    out["rae_l2_decoder_optimizer_params"] = pipeline.training_config.decoder_optimizer_params
    return out


def log_weights_bce(recon: np.ndarray, x: np.ndarray, mu: np.ndarray, log_var: np.ndarray,
                    eps: np.ndarray) -> np.ndarray:
    """log p(x|z) + log p(z) − log q(z|x) with a Bernoulli decoder at the given draws (Pythae drops ½ ln 2π in both
    densities, which cancels), float64."""
    x = x.reshape(x.shape[0], *([1] * (recon.ndim - 2)), -1).astype(np.float64)
    recon = recon.astype(np.float64)
    log_px = (x * np.log(recon) + (1 - x) * np.log(1 - recon)).sum(-1)
    shape = (mu.shape[0],) + (1,) * (eps.ndim - 2) + (mu.shape[1],)
    mu, log_var = mu.reshape(shape).astype(np.float64), log_var.reshape(shape).astype(np.float64)
    z = mu + eps * np.exp(0.5 * log_var)
    log_q = (-0.5 * (log_var + eps.astype(np.float64) ** 2)).sum(-1)
    return log_px - 0.5 * (z ** 2).sum(-1) - log_q


def logmeanexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).mean(axis=axis, keepdims=True))).squeeze(axis)


def our_side(theirs: dict[str, object]) -> list[str]:
    import torch

    from vaecore.components.likelihoods import build_likelihood
    from vaecore.components.quantizers import VectorQuantizer

    t = inputs()
    x, recon = torch.from_numpy(t["x"]), torch.from_numpy(t["recon"])
    logits = torch.logit(recon.double())
    lines = []
    sigma1 = build_likelihood("gaussian", (1, 28, 28), sigma="fixed", value=1.0)
    ours = float(sigma1.nll(logits, x.double()).mean())
    lines.append(f"VAE 'mse': Pythae {theirs['vae_mse']:.4f}, ours (σ = 1 Gaussian) {ours:.4f}, difference "
                 f"{ours - theirs['vae_mse']:.4f} = ½ D ln 2π = {0.5 * D * math.log(2 * math.pi):.4f}")
    half = build_likelihood("gaussian", (1, 28, 28), sigma="fixed", value=0.5 ** 0.5)
    ours = float(half.nll(logits, x.double()).mean())
    lines.append(f"AE 'mse': Pythae {theirs['ae_mse']:.4f}, ours (σ² = ½) {ours:.4f}, difference "
                 f"{ours - theirs['ae_mse']:.4f} = ½ D ln π = {0.5 * D * math.log(math.pi):.4f}")
    lw = log_weights_bce(t["recon_k"], t["x"], t["mu"], t["log_var"], t["eps_k"])
    bound = float(-logmeanexp(lw, 1).mean())
    lines.append(f"IWAE (K = {K}): Pythae's logged loss {theirs['iwae_loss']:.4f}; −IWAE bound at the same draws "
                 f"{bound:.4f}: Pythae logs the self-normalised surrogate −Σ w̃ log w, not the bound")
    lw = log_weights_bce(t["recon_mk"], t["x"], t["mu"], t["log_var"], t["eps_mk"])  # (B, M, K)
    ours_k = float(-logmeanexp(lw, 2).mean())  # MIWAE: log-mean over K inside, mean over M
    w_m = np.exp(lw - lw.max(1, keepdims=True))
    surrogate_m = float(-((w_m / w_m.sum(1, keepdims=True)) * lw).sum(1).mean())
    w_k = np.exp(lw - lw.max(2, keepdims=True))
    surrogate_k = float(-((w_k / w_k.sum(2, keepdims=True)) * lw).sum(2).mean())
    lines.append(f"MIWAE (M = {M}, K = {K}): Pythae's loss {theirs['miwae_loss']:.4f} = the surrogate normalised over "
                 f"the M axis {surrogate_m:.4f} (over K it would be {surrogate_k:.4f}; the MIWAE bound, log-mean over "
                 f"K, is {ours_k:.4f})")
    q = VectorQuantizer(32, LATENT, beta=0.25)
    with torch.no_grad():
        q.codebook.copy_(torch.from_numpy(t["codebook"]))
    z = torch.from_numpy(t["z_vq"]).permute(0, 2, 3, 1).reshape(-1, LATENT)
    per_image = float(q(z).loss.detach().reshape(B, -1).sum(1).mean())
    lines.append(f"VQ term: Pythae {theirs['vq_loss']:.6f} (mean over the B·7·7·16 values), ours {per_image:.4f} "
                 f"(summed over the 7·7·16 = 784 values of an image): ratio {per_image / theirs['vq_loss']:.2f}")
    lines.append(f"HVAE beta_zero = 0.3: Pythae's √β₀ = {theirs['hvae_beta_zero_sqrt']:.4f} (= √0.3: its beta_zero is "
                 f"β₀, as ours); RHVAE beta_zero = 0.3: Pythae's √β₀ = {theirs['rhvae_beta_zero_sqrt']:.4f} (its "
                 "beta_zero is √β₀: β₀ = 0.09)")
    lines.append("RAE-L2 through Pythae's default TrainingPipeline: decoder optimizer parameters "
                 f"{theirs['rae_l2_decoder_optimizer_params']!r} (None: reg_weight is not applied)")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("side", choices=["pythae", "ours"])
    p.add_argument("--pythae", help="the JSON Pythae's side printed (for 'ours')")
    args = p.parse_args()
    if args.side == "pythae":
        print(json.dumps(pythae_side(), indent=1))
        return
    if not args.pythae:
        sys.exit("ours needs --pythae FILE (the output of the pythae side)")
    with open(args.pythae) as fh:
        theirs = json.load(fh)
    print("\n".join(f"- {line}" for line in our_side(theirs)))


if __name__ == "__main__":
    main()

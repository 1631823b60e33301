"""The names of what a run logs: record kinds and the keys of metrics.jsonl, with what each means.

The Trainer writes records of `KINDS`; a step record holds the model's `LossOutput.logs` (its
objective terms and likelihood traces) plus the Trainer's own keys, an epoch record the
validation values. `LOG_KEYS` says what every key means, so readers (the app's charts, trackers)
label a trace by looking it up instead of guessing from its name; `tests/test_records.py` checks
that every key any preset logs is described here.
"""

from __future__ import annotations

from dataclasses import dataclass

from vaecore.components.likelihood_facts import LOG_SIGMA, LOG_SIGMA_EMA, SIGMA2_EMA, SIGMA2_MLE

KINDS = ("event", "step", "epoch", "images")


@dataclass(frozen=True)
class LogKey:
    """A logged quantity: a short `label` for a chart, what it `means`, and whether it is a
    decoder-scale trace (ln σ, σx²) and best shown on a log axis."""

    label: str
    means: str
    scale_trace: bool = False
    log_axis: bool = False


def _k(label: str, means: str, *, scale: bool = False, log: bool = False) -> LogKey:
    return LogKey(label, means, scale, log)


LOG_KEYS: dict[str, LogKey] = {
    # the Trainer's own
    "loss": _k("Loss (per example)", "the training objective per example (nats for likelihood-based families)"),
    "lr": _k("Learning rate", "the first optimizer's learning rate", log=True),
    "kl_weight": _k("KL weight", "the KL warm-up factor in [0, 1]"),
    "images_per_s": _k("Images / s", "training throughput since the last log"),
    "eta_s": _k("Time left (s)", "estimated seconds to the end of the run"),
    "val_loss": _k("Validation loss", "the objective on the validation images (evaluation mode)"),
    "val_elbo": _k("Validation ELBO", "evidence lower bound per validation image, nats"),
    "val_mse": _k("Validation MSE", "squared error of the decoded posterior draw, summed over pixels, per image"),
    # reconstruction and the KL family
    "recon": _k("Reconstruction", "the likelihood's training term (−log p(x|z) or its MLE-σ objective)"),
    "kl": _k("KL", "KL(q(z|x) ‖ p(z)) per example, nats"),
    "iwae_bound": _k("IWAE bound", "the K-sample importance-weighted bound per example, nats"),
    "mmd": _k("MMD", "MMD² between the codes and prior draws (unweighted)"),
    "z_norm": _k("½‖z‖²", "the RAE's code-norm penalty (unweighted)"),
    "penalty": _k("Decoder penalty", "the RAE's decoder smoothness penalty (unweighted)"),
    "tc": _k("Total correlation", "TC(q(z)): FactorVAE's discriminator estimate (logit mean), β-TC-VAE's "
             "minibatch estimate"),
    "disc_loss": _k("Discriminator loss", "cross-entropy of a discriminator (its own optimizer)"),
    "disc_accuracy": _k("Discriminator accuracy", "fraction of real/fake draws the discriminator gets right"),
    # decoder-scale traces
    LOG_SIGMA: _k("ln σ", "ln σ of the decoder at this step (the step's σ* for the analytic σ)", scale=True),
    LOG_SIGMA_EMA: _k("ln σ (EMA)", "the EMA of the analytic σ* that defines the density after training",
                        scale=True),
    SIGMA2_MLE: _k("σx² (MLE)", "AR-ELBO: this step's maximum-likelihood σx² (mean over pixels)", scale=True,
                     log=True),
    SIGMA2_EMA: _k("σx² (EMA)", "AR-ELBO: the EMA of σx² that defines the density after training", scale=True,
                     log=True),
    # the other Pythae families
    "mi": _k("Index-code MI", "β-TC-VAE: E[log q(z|x) − log q(z)] (minibatch estimate)"),
    "dwkl": _k("Dimension-wise KL", "β-TC-VAE: Σ_j E[log q(z_j) − log p(z_j)] (minibatch estimate)"),
    "capacity": _k("Capacity C", "disentangled β-VAE: the KL target C_t at this step, nats"),
    "kl_gap": _k("|KL − C|", "disentangled β-VAE: distance of the KL from the capacity (unweighted)"),
    "miwae_bound": _k("MIWAE bound", "(1/M) Σ_m log (1/K) Σ_k w_mk per example, nats"),
    "elbo_k": _k("ELBO (K draws)", "CIWAE: the ELBO averaged over the K draws, nats"),
    "bound": _k("Bound", "HVAE / RHVAE: the Hamiltonian bound per example, nats"),
    "beta_zero": _k("β₀", "HVAE: the initial inverse temperature of the tempering"),
    "eps_lf": _k("Leapfrog step", "HVAE: the leapfrog step size"),
    "metric_centres": _k("Metric centres", "RHVAE: training points whose codes define the metric"),
    "adversarial": _k("Adversarial term", "AAE: the autoencoder's BCE(D(z), 1) (unweighted)"),
    "vq_loss": _k("VQ loss", "VQ-VAE / HRQ-VAE: codebook + commitment terms"),
    "perplexity": _k("Code perplexity", "exp of the entropy of the code usage in the batch (1 = one code)"),
    "ms_ssim": _k("MS-SSIM", "mean multi-scale SSIM of the reconstructions (1 = perfect)"),
    "msssim_scales": _k("MS-SSIM scales", "how many scales MS-SSIM uses at this image size"),
    "msssim_window": _k("MS-SSIM window", "the Gaussian window width MS-SSIM uses at this image size"),
    "feature_recon": _k("Feature reconstruction", "VAE-GAN: Gaussian error in a discriminator layer's features"),
    "gan_generator": _k("GAN term (decoder)", "VAE-GAN: the decoder's adversarial loss"),
    "encoder_loss": _k("Encoder loss", "VAE-GAN: KL + feature reconstruction"),
    "decoder_loss": _k("Decoder loss", "VAE-GAN: γ·feature reconstruction + the GAN term"),
    # T-VAE
    "recon_x": _k("Reconstruction of x", "T-VAE: −log p(x|z0)"),
    "kl_z0": _k("KL z0", "T-VAE: KL of q_phi(z0|x)"),
    "kl_z": _k("KL z", "T-VAE: KL of q_psi(z|z1, z2)"),
    "indirect": _k("Indirect term", "T-VAE: −log p(x|z) with z from the two views"),
    "t_norm": _k("‖T‖", "T-VAE: mean norm of the latent transformation"),
}


def describe(key: str) -> LogKey:
    """What a logged key means (an unknown key is labelled by its name)."""
    return LOG_KEYS.get(key, LogKey(key, "not described"))

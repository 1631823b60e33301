"""The papers' published numbers, as data, to print beside ours.

Transcribed from the text extracts in `shared/papers/`. Where the extraction garbled a cell
the value is None and a comment quotes what the extract says; no value is guessed. These
numbers are not directly comparable with vaecore's: the papers train for up to 100 epochs,
and their FID uses Inception-v3 features, while vaecore's Fréchet distance uses a small MNIST
classifier's features (see `vaecore.features`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ARELBO_MNIST_SETTINGS", "ARELBO_TABLE3_MNIST", "ARELBO_TABLE4_MNIST", "PYTHAE_MNIST_SETTINGS",
    "PYTHAE_TABLE4_MNIST", "REPRODUCTION_MNIST_NLL", "SIGMA_TABLE2", "SIGMA_TABLE4_CIFAR",
    "SOURCES", "TVAE_MNIST_NLL", "TVAE_TABLE1_KNN", "reference_row", "reproduction_source",
]

SOURCES: dict[str, str] = {
    "arelbo": "Lin et al., 'Preventing Posterior Collapse Induced by Oversmoothing in Gaussian VAE' "
              "(AR-ELBO, ICLR 2021 submission)",
    "sigma": "Rybkin, Daniilidis & Levine, 'Simple and Effective VAE Training with Calibrated Decoders' (σ-VAE)",
    "tvae": "Giannone, Masci & Osendorfer, 'No Representation without Transformation' (T-VAE)",
    "pythae": "Chadebec, Vincent & Allassonnière, 'Pythae: Unifying Generative Autoencoders in Python' (NeurIPS 2022 "
              "Datasets and Benchmarks)",
}

FID_NOTE = ("the papers' FID is computed on Inception-v3 features (pytorch-fid, 10,000 samples); our FD uses "
            "another feature network and fewer samples, so the two are not comparable in absolute value")

# AR-ELBO Table 3, MNIST half. MSE: squared error summed over the 784 pixels, per test image.
# FID with z from the prior, from a 2nd-stage VAE (Dai & Wipf) and from a 10-component GMM.
# "-" in the paper (AE/RAE have no prior) is None here. Keys are vaecore preset names.
ARELBO_TABLE3_MNIST: dict[str, dict[str, Any]] = {
    # the extract reads "-58.96—" for GMM-10: the digits are intact, the dashes are table rules
    "gaussian-vae": {"label": "VAE (σx² = 1.0)", "mse": 20.25, "fid_prior": 55.85, "fid_two_stage": 182.64,
                     "fid_gmm": 58.96},
    "wae-mmd-imq": {"label": "WAE-MMD", "mse": 4.34, "fid_prior": 22.76, "fid_two_stage": 15.00, "fid_gmm": 13.70},
    "ae": {"label": "AE", "mse": 4.31, "fid_prior": None, "fid_two_stage": 20.66, "fid_gmm": 13.20},
    "rae-l2": {"label": "RAE", "mse": 4.28, "fid_prior": None, "fid_two_stage": 18.54, "fid_gmm": 13.68},
    "rae-gp": {"label": "RAE-GP", "mse": 4.30, "fid_prior": None, "fid_two_stage": 18.89, "fid_gmm": 13.71},
    # the extract reads "14.83 去^^" and "13.39-": stray marks after intact numbers
    "trainable-iso-i": {"label": "Iso-I w/ trainable Σx", "mse": 4.28, "fid_prior": 20.93, "fid_two_stage": 14.83,
                        "fid_gmm": 13.39},
    "trainable-diag-i": {"label": "Diag-I w/ trainable Σx", "mse": 5.70, "fid_prior": 26.08, "fid_two_stage": 18.44,
                         "fid_gmm": 15.72},
    "trainable-iso-d": {"label": "Iso-D w/ trainable Σx", "mse": 4.45, "fid_prior": 27.40, "fid_two_stage": 16.38,
                        "fid_gmm": 13.67},
    # MNIST values carry no "*"; the paper's "*" (did not converge; best-test-MSE checkpoint) is on CelebA only
    "trainable-diag-d": {"label": "Diag-D w/ trainable Σx", "mse": 5.33, "fid_prior": 146.43,
                         "fid_two_stage": 26.02, "fid_gmm": 27.90},
    # GMM-10 reads "1221-" (decimal point lost; most likely 12.21), so it is left out
    "arelbo-iso-i": {"label": "Ours (Iso-I w/ AR-ELBO)", "mse": 4.40, "fid_prior": 22.78, "fid_two_stage": 15.77,
                     "fid_gmm": None},
    "arelbo-diag-i": {"label": "Ours (Diag-I w/ AR-ELBO)", "mse": 5.35, "fid_prior": 24.15, "fid_two_stage": 17.18,
                      "fid_gmm": 13.38},
    "arelbo-iso-d": {"label": "Ours (Iso-D w/ AR-ELBO)", "mse": 4.31, "fid_prior": 22.94, "fid_two_stage": 17.57,
                     "fid_gmm": 12.89},
    "arelbo-diag-d": {"label": "Ours (Diag-D w/ AR-ELBO)", "mse": 6.80, "fid_prior": 16.64, "fid_two_stage": 10.49,
                      "fid_gmm": 10.05},
}

# How the AR-ELBO paper trained and evaluated on MNIST (Section 5, Appendix J).
ARELBO_MNIST_SETTINGS: dict[str, Any] = {
    "latent_dim": 16, "epochs": 100, "batch_size": 64, "lr": 1e-3, "optimizer": "Adam",
    "architecture": "arelbo-conv (App. J, after Chen et al. 2016)", "fid_samples": 10_000,
    "fid_implementation": "pytorch-fid (Inception-v3)", "gmm_components": 10,
    "iso_i_learned_sigma2": 0.0056,
}

# AR-ELBO Table 4, MNIST half: FID of images decoded from interpolated latents of 10,000 test pairs,
# at the mid-point and at a random point between the two.
ARELBO_TABLE4_MNIST: dict[str, dict[str, Any]] = {
    # the extract reads "-62.18", "-15.66", "-14.77": leading dashes are table rules (FID is >= 0)
    "gaussian-vae": {"label": "VAE (σx² = 1.0)", "fid_mid": 62.18, "fid_random": 63.86},
    "wae-mmd-imq": {"label": "WAE-MMD", "fid_mid": 17.27, "fid_random": 12.41},
    "ae": {"label": "AE", "fid_mid": 18.49, "fid_random": 12.81},
    "rae-l2": {"label": "RAE", "fid_mid": 17.71, "fid_random": 12.99},
    "rae-gp": {"label": "RAE-GP", "fid_mid": 17.98, "fid_random": 12.96},
    # random-point reads "1273" (decimal point lost)
    "trainable-iso-i": {"label": "Iso-I w/ trainable Σx", "fid_mid": 15.66, "fid_random": None},
    "trainable-diag-i": {"label": "Diag-I w/ trainable Σx", "fid_mid": 17.34, "fid_random": 14.77},
    "trainable-iso-d": {"label": "Iso-D w/ trainable Σx", "fid_mid": 17.03, "fid_random": 13.33},
    "trainable-diag-d": {"label": "Diag-D w/ trainable Σx", "fid_mid": 51.65, "fid_random": 31.66},
    # random-point reads "11:27"
    "arelbo-iso-i": {"label": "Ours (Iso-I w/ AR-ELBO)", "fid_mid": 14.77, "fid_random": None},
    "arelbo-diag-i": {"label": "Ours (Diag-I w/ AR-ELBO)", "fid_mid": 17.24, "fid_random": 13.08},
    "arelbo-iso-d": {"label": "Ours (Iso-D w/ AR-ELBO)", "fid_mid": 15.30, "fid_random": 12.01},
    "arelbo-diag-d": {"label": "Ours (Diag-D w/ AR-ELBO)", "fid_mid": 11.96, "fid_random": 8.68},
}

# σ-VAE appendix Table 4, "ELBO on discretized data", CIFAR (not MNIST). Every likelihood there is
# a bound printed as "< value" (a negative ELBO), in nats per image: −log pdf of the continuous
# density and −log p of the 8-bit image. −log pdf is blank for the discrete decoders.
SIGMA_TABLE4_CIFAR: dict[str, dict[str, Any]] = {
    "categorical-vae": {"label": "Categorical VAE", "nll_pdf": None, "nll_discrete": 10673, "fid": 137.6},
    "gaussian-vae": {"label": "Gaussian VAE", "nll_pdf": 740.5, "nll_discrete": 15131, "fid": 212.7},
    "sigma-vae": {"label": "Gaussian σ-VAE", "nll_pdf": -896.1, "nll_discrete": 11120, "fid": 136.7},
    "disc-gaussian-vae": {"label": "Disc. Gaussian σ-VAE", "nll_pdf": None, "nll_discrete": 11117, "fid": 136.9},
    "disc-logistic-vae": {"label": "Disc. Logistic σ-VAE", "nll_pdf": None, "nll_discrete": 11103, "fid": 136.7},
}

# σ-VAE Table 2 is in the main paper; the appendix extract only names the decoders it compares
# (Beta, bitwise-categorical, logistic mixture; Appendix C) and gives none of its numbers.
SIGMA_TABLE2: dict[str, dict[str, Any]] = {}

# T-VAE Table 1: KNN test accuracy (%) on latent means μ_z. The letter before the dash is the
# data the VAE was trained on (M = MNIST, F = Fashion-MNIST), the one after it the data the KNN
# is fitted on (its training-set embeddings) and tested on (its test-set embeddings):
# M-Aff / F-Aff = AffNIST (domain shift), M-M / F-F = the training dataset itself (no shift).
# VAE+ is a VAE trained on the data augmented with the T-VAE's transformations.
TVAE_PAPER_MODELS: dict[str, str] = {"vae": "VAE", "vae-plus": "VAE+", "tvae": "T-VAE"}
"""The T-VAE paper's name for each of our presets of its line-up (the keys of its tables below)."""
TVAE_TABLE1_KNN: dict[str, dict[int, dict[str, float]]] = {
    "VAE": {10: {"M-Aff": 55.9, "M-M": 96.2, "F-Aff": 32.8, "F-F": 81.7},
            100: {"M-Aff": 66.3, "M-M": 96.2, "F-Aff": 43.1, "F-F": 82.6}},
    "VAE+": {10: {"M-Aff": 70.2, "M-M": 96.7, "F-Aff": 36.3, "F-F": 82.2},
             100: {"M-Aff": 79.2, "M-M": 97.4, "F-Aff": 43.3, "F-F": 82.7}},
    "T-VAE": {10: {"M-Aff": 73.5, "M-M": 96.6, "F-Aff": 55.1, "F-F": 84.0},
              100: {"M-Aff": 90.6, "M-M": 98.1, "F-Aff": 81.2, "F-F": 86.9}},
}

# T-VAE Section 3 (Experiments), "Generative Modeling": MNIST test marginal likelihood ("~ 92 nats"), as −log p(x)
# in nats; the paper gives them only to the nat and states neither the estimator nor whether MNIST was binarized.
TVAE_MNIST_NLL: dict[str, float] = {"T-VAE": 92.0, "VAE": 93.0, "VAE+": 94.0}

# Pythae appendix D.2, Table 4, the MNIST ConvNet column: FID (Inception, 10k samples on the test set) per
# sampler — the prior N(0, I), a 10-component GMM, a 2-stage VAE and a MAF — for the configuration (of 10
# per model) with the lowest validation FID. The extract attaches each model's name either before its
# block of rows or to its third row; the blocks follow the paper's model order, which fixes the mapping.
# AE-type models have no 2-stage row; the VAMP row is its own VampPrior sampler. Our `beta-vae` (σ = 1,
# β = 0.01) is one point of Pythae's β grid, `gaussian-vae` is Pythae's VAE (its "mse" loss).
# Their reconstruction, classification and clustering numbers are in the main paper, not in our copy.
PYTHAE_TABLE4_MNIST: dict[str, dict[str, Any]] = {
    "gaussian-vae": {"label": "VAE", "prior": 28.5, "gmm": 26.9, "two-stage": 40.3, "maf": 26.8},
    "vamp-vae": {"label": "VAMP", "vamp": 64.2},
    "iwae": {"label": "IWAE", "prior": 29.0, "gmm": 28.4, "two-stage": 42.4, "maf": 28.1},
    "vae-linnf": {"label": "VAE-lin NF", "prior": 29.3, "gmm": 28.4, "two-stage": 40.1, "maf": 27.7},
    "vae-iaf": {"label": "VAE-IAF", "prior": 27.5, "gmm": 27.0, "two-stage": 39.4, "maf": 26.9},
    "beta-vae": {"label": "β-VAE", "prior": 21.4, "gmm": 9.2, "two-stage": 14.0, "maf": 9.5},
    "beta-tc-vae": {"label": "β-TC VAE", "prior": 21.3, "gmm": 11.6, "two-stage": 18.4, "maf": 12.0},
    "factor-vae": {"label": "FactorVAE", "prior": 27.0, "gmm": 26.9, "two-stage": 41.2, "maf": 26.7},
    "info-vae-rbf": {"label": "InfoVAE - RBF", "prior": 27.5, "gmm": 26.7, "two-stage": 39.7, "maf": 25.9},
    "info-vae-imq": {"label": "InfoVAE - IMQ", "prior": 28.3, "gmm": 27.7, "two-stage": 40.4, "maf": 27.2},
    "aae": {"label": "AAE", "prior": 16.8, "gmm": 9.3, "two-stage": 13.4, "maf": 9.3},
    "msssim-vae": {"label": "MSSSIM-VAE", "prior": 26.7, "gmm": 27.2, "two-stage": 51.2, "maf": 26.9},
    "vaegan": {"label": "VAEGAN", "prior": 8.7, "gmm": 6.3, "two-stage": 11.2, "maf": 6.9},
    "ae": {"label": "AE", "prior": 26.7, "gmm": 9.3, "maf": 9.9},
    "wae-mmd-rbf": {"label": "WAE - RBF", "prior": 21.2, "gmm": 9.2, "maf": 9.8},
    "wae-mmd-imq": {"label": "WAE - IMQ", "prior": 18.9, "gmm": 8.6, "maf": 9.5},
    "vqvae": {"label": "VQVAE", "prior": 28.2, "gmm": 9.1, "maf": 9.6},
    "rae-l2": {"label": "RAE-L2", "prior": 25.0, "gmm": 9.1, "maf": 9.5},
    "rae-gp": {"label": "RAE - GP", "prior": 27.1, "gmm": 9.7, "maf": 9.7},
}

# How Pythae trained and evaluated (appendix C): the last 10k training images as validation, 10
# configurations per model, 100 epochs, Adam 1e-4 halved after 10 epochs without improvement, batch
# 100; MAF (2 blocks of 3 × 128 MADE) and 2-stage (MLP 2 × 1024) samplers fitted for 200 epochs.
PYTHAE_MNIST_SETTINGS: dict[str, Any] = {"epochs": 100, "lr": 1e-4, "batch_size": 100, "configs_per_model": 10,
                                         "fid_samples": 10_000, "network": "Pythae ConvNet (Table 2)"}

# The reproduction board (experiments/reproduction.py): test −log p(x) in nats on binarized MNIST, keyed by board
# row. "iwae": Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders" (ICLR 2016), Table 1, MNIST, one
# stochastic layer, K = 5000, 3^8 passes; VAE and IWAE are the same objective at k = 1 (both 86.76).
# "pythae": the README of clementchadebec/benchmark_VAE, examples/scripts/reproducibility/ ("Obtained value", in
# brackets there the s.d. over 5 evaluation rounds; "paper" is its "Reference value"), with the K it states.
REPRODUCTION_MNIST_NLL: dict[str, dict[str, Any]] = {
    "iwae-k1": {"source": "iwae", "value": 86.76, "k": 5000},
    "vae-k5": {"source": "iwae", "value": 86.47, "k": 5000},
    "vae-k50": {"source": "iwae", "value": 86.35, "k": 5000},
    "iwae-k5": {"source": "iwae", "value": 85.54, "k": 5000},
    "iwae-k50": {"source": "iwae", "value": 84.78, "k": 5000},
    "pythae-vae": {"source": "pythae", "value": 89.78, "paper": 89.9, "k": 200,
                   "paper_ref": "Rezende & Mohamed 2015 (arXiv 1505.05770)"},
    "pythae-vamp": {"source": "pythae", "value": 85.79, "paper": 85.57, "k": 5000,
                    "paper_ref": "Tomczak & Welling 2018 (arXiv 1705.07120)"},
    "pythae-iwae": {"source": "pythae", "value": 86.82, "paper": 87.1, "k": 5000,
                    "paper_ref": "Burda et al. 2016 (arXiv 1509.00519)"},
    "pythae-miwae": {"source": "pythae", "value": 85.09, "paper": 84.97, "k": 5000,
                     "paper_ref": "Rainforth et al. 2018 (arXiv 1802.04537)"},
    "pythae-piwae": {"source": "pythae", "value": 84.58, "paper": 84.46, "k": 5000,
                     "paper_ref": "Rainforth et al. 2018 (arXiv 1802.04537)"},
    "pythae-ciwae": {"source": "pythae", "value": 84.74, "paper": 84.57, "k": 5000,
                     "paper_ref": "Rainforth et al. 2018 (arXiv 1802.04537)"},
    "pythae-hvae": {"source": "pythae", "value": 86.21, "paper": 86.40, "k": 1000,
                    "paper_ref": "Caterini et al. 2018 (arXiv 1410.6460 as Pythae links it)"},
    "pythae-svae": {"source": "pythae", "value": 93.13, "paper": 93.16, "k": 500,
                    "paper_ref": "the S-VAE code (nicola-decao/s-vae-pytorch)"},
    "pythae-pvae": {"source": "pythae", "value": 101.66, "paper": 101.47, "k": 500,
                    "paper_ref": "the P-VAE code (emilemathieu/pvae)"},
}
_REPRODUCTION_SOURCES = {
    "iwae": "Burda, Grosse & Salakhutdinov, \"Importance Weighted Autoencoders\" (ICLR 2016), Table 1",
    "pythae": "Pythae's reproducibility table (README of examples/scripts/reproducibility/ in "
              "clementchadebec/benchmark_VAE)",
}


def reproduction_source(group: str) -> str:
    """The citation of a reproduction-board group ("iwae" or "pythae")."""
    return _REPRODUCTION_SOURCES[group]


_TABLES: dict[str, dict[str, dict[str, Any]]] = {
    "arelbo-table3": ARELBO_TABLE3_MNIST,
    "arelbo-table4": ARELBO_TABLE4_MNIST,
    "sigma-table4": SIGMA_TABLE4_CIFAR,
    "pythae-table4": PYTHAE_TABLE4_MNIST,
}


def reference_row(table: str, preset: str) -> dict[str, Any] | None:
    """The published row of `table` ("arelbo-table3", "arelbo-table4", "sigma-table4") for a preset, or None."""
    if table not in _TABLES:
        raise KeyError(f"unknown reference table {table!r}; known: {', '.join(_TABLES)}")
    return _TABLES[table].get(preset)

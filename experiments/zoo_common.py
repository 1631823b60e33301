"""What the zoo scripts share: the zoo's line-up and budget, a bundled model's reference outputs, committing results.

`train_zoo.py` trains and installs the zoo, `zoo_table.py` renders checkpoints/RESULTS.md from it and
`tvae_transfer.py` commits its scores; each imports this module and none imports another, so the three form no
import circle. `tests/test_zoo.py` and `tests/test_checkpoint_outputs.py` read the line-up and the reference
outputs from here too.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import vaecore  # noqa: E402
from vaecore.evaluation import protocol  # noqa: E402
from vaecore.models.families import family_title  # noqa: E402

HUB_OWNER = "vae-explorer"
LATENT = 16
SEED = protocol.SEED
EPOCHS = 10
EVAL_N_TEST = protocol.N_TEST
CHECK_N_TEST = 500
CHECK_METRICS = ["elbo", "mse"]
OWN_LATENT = ("tvae", "tvae-100", "vae", "vae-plus")  # the T-VAE line-up keeps its paper's latent size


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: a preset (default: the name) at a latent size, trained `epochs` epochs.

    `bundle=False` marks a model meant for the Hub, not checkpoints/ (a file over 10 MB, or the folder's
    100 MB budget): it is trained and evaluated in runs/zoo/<name>/, ready for `python -m vaecore
    publish`, and listed under "hub_models" in the catalog with its eval.json, which RESULTS.md's tables
    read.
    """

    name: str
    title: str = ""  # default: the family's title (vaecore.models.families)
    epochs: int = EPOCHS
    preset_name: str | None = None
    latent: int | None = None
    bundle: bool = True

    @property
    def preset(self) -> str:
        return self.preset_name or self.name

    @property
    def display_title(self) -> str:
        """Its title in the catalog: its own, else its family's."""
        return self.title or family_title(vaecore.model_config(self.preset).model_type)

    @property
    def latent_dim(self) -> int | None:
        """The latent size set on the preset (None: the preset's own)."""
        return self.latent or (None if self.preset in OWN_LATENT else LATENT)


# In training order: the models behind the papers' claims first.
ZOO = [
    ZooEntry("sigma-vae", "σ-VAE (optimal σ)"),
    ZooEntry("gaussian-vae", "Gaussian VAE (σ = 1)"),
    ZooEntry("sigma-vae-learned", "σ-VAE (learned shared σ)"),
    ZooEntry("sigma-vae-per-pixel", "σ-VAE (per-pixel σ)"),
    ZooEntry("beta-vae", "β-VAE (σ = 1, β = 0.01)"),
    ZooEntry("bernoulli-vae", "Bernoulli VAE"),
    ZooEntry("arelbo-iso-i", "AR-ELBO Iso-I"),
    ZooEntry("arelbo-iso-d", "AR-ELBO Iso-D"),
    ZooEntry("arelbo-diag-i", "AR-ELBO Diag-I"),
    ZooEntry("arelbo-diag-d", "AR-ELBO Diag-D"),
    ZooEntry("trainable-iso-d", "Iso-D, trainable Σx"),
    ZooEntry("trainable-diag-i", "Diag-I, trainable Σx"),
    ZooEntry("tvae", "T-VAE (latent 10)"),
    ZooEntry("vae", "VAE (T-VAE baseline, latent 10)"),
    ZooEntry("vae-plus", "VAE+ (augmented, latent 10)"),
    ZooEntry("disc-gaussian-vae", "Discretized Gaussian VAE"),
    ZooEntry("disc-logistic-vae", "Discretized logistic VAE"),
    ZooEntry("logistic-mixture-vae", "Logistic mixture VAE"),
    ZooEntry("categorical-vae", "Categorical-256 VAE"),
    ZooEntry("bitwise-vae", "Bitwise-categorical VAE"),
    ZooEntry("beta-likelihood-vae", "Beta-likelihood VAE"),
    ZooEntry("iwae", "IWAE (K = 5)"),
    ZooEntry("ae", "Autoencoder"),
    ZooEntry("wae-mmd-imq", "WAE-MMD (IMQ)"),
    ZooEntry("rae-gp", "RAE-GP"),
    ZooEntry("vamp-vae", "VAE with a VampPrior"),
    ZooEntry("rae-l2", "RAE-L2"),
    ZooEntry("wae-mmd-rbf", "WAE-MMD (RBF)"),
    ZooEntry("beta-tc-vae"),
    ZooEntry("disentangled-beta-vae"),
    ZooEntry("factor-vae"),
    ZooEntry("info-vae-imq", "InfoVAE-MMD (IMQ)"),
    ZooEntry("info-vae-rbf", "InfoVAE-MMD (RBF)"),
    ZooEntry("vae-linnf", "VAE with planar/radial flows"),
    ZooEntry("vae-iaf", "VAE with an IAF posterior"),
    ZooEntry("vqvae"),
    ZooEntry("hrq-vae"),
    ZooEntry("msssim-vae"),
    ZooEntry("svae", "Hyperspherical VAE (vMF)"),
    ZooEntry("poincare-vae"),
    ZooEntry("aae", "Adversarial autoencoder"),
    ZooEntry("miwae", "MIWAE (M = 5, K = 10)"),
    ZooEntry("ciwae", "CIWAE (β = 0.5, K = 10)"),
    ZooEntry("piwae"),
    ZooEntry("hvae", "Hamiltonian VAE"),
    ZooEntry("rhvae", "Riemannian Hamiltonian VAE"),
    ZooEntry("vaegan"),
    ZooEntry("tvae-100", "T-VAE (latent 100)", bundle=False),  # 10.0 MB of weights
    # Pythae's latent-dimension effect (their Fig. 6: 16 vs 256) on a variational and an AE-type subset
    # (about 5 MB of weights each, 10 MB with a 256-d GMM: all five would take checkpoints/ near 100 MB)
    *(ZooEntry(f"{p}-z256", f"{title}, latent 256", preset_name=p, latent=256, bundle=False)
      for p, title in (("gaussian-vae", "Gaussian VAE (σ = 1)"), ("vamp-vae", "VAE with a VampPrior"),
                       ("ae", "Autoencoder"), ("wae-mmd-imq", "WAE-MMD (IMQ)"), ("rae-l2", "RAE-L2"))),
]
BY_NAME = {e.name: e for e in ZOO}
ALIASES = {name: p.alias_of for name, p in vaecore.PRESETS.items() if p.alias_of and p.alias_of in BY_NAME}
"""Presets that are the same model as a zoo entry (trainable-iso-i ≡ sigma-vae-learned): not trained again; tables
that name them (AR-ELBO Table 3) read the entry's evaluation."""


def reproduce_command(entry: ZooEntry, epochs: int) -> str:
    """The CLI line that trains a zoo model again."""
    latent = "" if entry.latent_dim is None else f" --latent-dim {entry.latent_dim}"
    where = "checkpoints" if entry.bundle else "runs/zoo"
    return (f"python -m vaecore train --model {entry.preset} --data mnist --epochs {epochs}{latent} "
            f"--seed {SEED} --out {where}/{entry.name}")


def write_card(folder: Path, result: dict | None = None) -> None:
    """A zoo model's card from its config, training record and evaluation (its eval.json when `result` is None),
    ending with the command that reproduces it."""
    import json

    from vaecore.files import CONFIG, TRAIN
    from vaecore.model_card import write_model_card

    config = json.loads((folder / CONFIG).read_text())
    epochs = json.loads((folder / TRAIN).read_text())["epochs"]
    write_model_card(folder, config, result,
                     extra=f"Reproduce:\n\n```\n{reproduce_command(BY_NAME[folder.name], epochs)}\n```")


def summary(t: torch.Tensor) -> dict:
    t = t.detach().double().flatten()
    return {"n": t.numel(), "sum": float(t.sum()), "abs_sum": float(t.abs().sum()),
            "head": [float(v) for v in t[:6]]}


def check_images(model: vaecore.PretrainedModel, n: int) -> torch.Tensor:
    """n images of the model's own data for output checks, in [0, 1]: the first n MNIST test images, or for a model
    of dSprites n images spread evenly over the factor grid (rendered by the generator; no dataset to load)."""
    data = str(getattr(model.config, "dataset", None) or "mnist")
    if data.startswith("dsprites"):
        import numpy as np

        from vaecore.data import sprites

        rows = np.linspace(0, sprites.n_images() - 1, n).round().astype(int)
        images = np.concatenate([sprites.render(int(r), int(r) + 1) for r in rows])
        return torch.from_numpy(images).float() / 255
    if data != "mnist":
        raise ValueError(f"no check images for a model of {data!r}: add them to zoo_common.check_images")
    return vaecore.load_dataset("mnist").x_test[:n]


def reference_outputs(model: vaecore.PretrainedModel) -> dict:
    """What tests/test_checkpoint_outputs.py checks: the latents, decoder outputs and seeded importance weights of
    8 images of the model's data (`check_images`), computed in float64 (a copy of the model converted with
    `.double()`) so that the numbers hardly depend on the CPU that computes them (see that test for the
    tolerance)."""
    model = copy.deepcopy(model).double().eval()
    x = check_images(model, 8).double()
    with torch.no_grad():
        z = model.embed(x)
        entry = {"latent": summary(z), "decoder": summary(model.decode_params(z))}
        if model.capabilities.elbo:
            g = torch.Generator().manual_seed(0)
            entry["log_weights"] = summary(model.log_importance_weights(x, 4, generator=g))
    return entry


def git_commit(repo: Path, paths: list[str], message: str) -> None:
    """Commit only `paths` (whatever else is staged stays staged); retried while another git holds the index."""
    for attempt in range(30):
        add = subprocess.run(["git", "-C", str(repo), "add", "-A", "--", *paths], capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "-C", str(repo), "commit", "-q", "-m", message, "--", *paths],
            capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(2 + attempt)
    raise RuntimeError(f"git commit of {paths} failed 30 times in {repo}")

"""Families declare what they are: title, what a model of it is, tags and the zoo group; cards and the app read
them from the engine (no family filed under another's title, no autoencoder called a VAE)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import vaecore
from vaecore.components.likelihoods import LIKELIHOODS
from vaecore.hub import bundled_names, checkpoints_dir
from vaecore.models.base import MODEL_TYPES
from vaecore.models.families import BY_LIKELIHOOD, GROUPS, card_group, family_title, group_heading

ENGINE_FAMILIES = {t: cls for t, cls in MODEL_TYPES.items() if cls.__module__.startswith("vaecore.")}  # not tests' toys


def test_every_family_declares_its_own_title_what_tags_and_group() -> None:
    for model_type, cls in ENGINE_FAMILIES.items():
        own = vars(cls)
        for name in ("title", "what", "tags", "group"):
            assert name in own and own[name], f"{model_type} does not declare its own {name}"
        assert cls.group in GROUPS or cls.group == BY_LIKELIHOOD, (model_type, cls.group)
        assert family_title(model_type) == cls.title
    titles = [cls.title for cls in ENGINE_FAMILIES.values()]
    assert len(set(titles)) == len(titles)
    for name, (cls, _) in LIKELIHOODS.items():
        assert f"vae-{cls.group}" in GROUPS, f"likelihood {name} names no group"
    assert all(p.group in GROUPS for p in vaecore.PRESETS.values() if p.group)
    with pytest.raises(ValueError, match="unknown model_type"):
        family_title("no-such-family")


def test_only_the_plain_vae_is_grouped_by_its_likelihood() -> None:
    assert [t for t, c in ENGINE_FAMILIES.items() if c.group == BY_LIKELIHOOD] == ["vae"]
    assert card_group({"model_type": "vae", "likelihood": "disc-logistic"}).key == "vae-discrete"
    assert card_group({"model_type": "vqvae", "likelihood": "bernoulli"}).key == "quantised"
    assert card_group({"model_type": "factor-vae", "likelihood": "gaussian"}).key == "disentangling"
    assert card_group(vaecore.model_config("vae-plus")).key == "tvae"  # a preset filed with its paper
    assert group_heading("importance-weighted") == "Importance-weighted bounds (IWAE, MIWAE, PIWAE, CIWAE)"


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_models_are_filed_under_their_own_family(name: str) -> None:
    folder = checkpoints_dir() / name
    config = json.loads((folder / "config.json").read_text())
    cls = MODEL_TYPES[config["model_type"]]
    group = card_group(config)
    if group.key.startswith("vae-"):  # the likelihood groups hold plain VAEs only
        assert config["model_type"] == "vae", (name, group.title)
    elif config.get("preset") not in ("vae", "vae-plus"):
        assert group.key == cls.group, (name, group.key, cls.group)
    card = (folder / "README.md").read_text()
    opening = next(line for line in card.splitlines() if line.startswith("**"))
    assert opening.startswith(f"**{cls.title}**: {cls.what}."), (name, opening)
    assert ("variational autoencoder" in opening) == ("variational" in cls.tags), (name, opening)


@pytest.mark.parametrize("preset", ["ae", "rae-l2", "vqvae", "sigma-vae"])
def test_a_saved_card_says_what_the_model_is(preset: str, tmp_path: Path) -> None:
    model = vaecore.build_preset(preset, input_shape=(1, 8, 8), arch="mlp", latent_dim=4)
    model.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    cls = type(model)
    assert f"**{cls.title}**: {cls.what}." in card and f"| family | {cls.title} (`{cls.model_type}`) |" in card
    assert ("variational autoencoder" in card) == (preset == "sigma-vae")
    assert all(f"- {t}" in card for t in cls.tags)

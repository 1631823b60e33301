"""The bundled model zoo: every catalog entry loads, matches its card, and its declared metrics are fresh."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

import vaecore
from vaecore.cli import build_parser
from vaecore.evaluation import metrics
from vaecore.hub import bundled_names
from vaecore.training import run_folder as rf

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
sys.path.insert(0, str(ROOT / "experiments"))
import disentanglement as study  # noqa: E402  (the dSprites study's bundled models)
from zoo_common import ALIASES, CHECK_METRICS, CHECK_N_TEST, ZOO  # noqa: E402

CATALOG = json.loads((CHECKPOINTS / "catalog.json").read_text())["models"]
STUDY_CATALOG = json.loads((CHECKPOINTS / "catalog.json").read_text()).get(study.CATALOG_KEY, [])


def test_catalog_lists_every_bundled_model_in_zoo_order() -> None:
    """The MNIST zoo's models under "models" in zoo order, the dSprites study's bundled seeds under its own key in
    the study's family order (experiments/disentanglement.py): together every bundled model, once."""
    order = [e.name for e in ZOO]
    names = [row["name"] for row in CATALOG]
    studied = [row["name"] for row in STUDY_CATALOG]
    assert sorted(names + studied) == bundled_names(), "a study bundle: python experiments/disentanglement.py bundles"
    assert names == [n for n in order if n in names]
    assert studied == [study.bundle_name(f) for f in study.FAMILIES if study.bundle_name(f) in studied]
    for row in CATALOG:
        train = json.loads((CHECKPOINTS / row["name"] / "train.json").read_text())
        assert row["epochs"] == train["epochs"] and f"--epochs {train['epochs']} " in row["reproduce"]
    for row in STUDY_CATALOG:
        train = json.loads((CHECKPOINTS / row["name"] / "train.json").read_text())
        config = json.loads((CHECKPOINTS / row["name"] / "config.json").read_text())
        assert row["epochs"] == train["epochs"] and row["steps"] == train["max_steps"]
        assert config["dataset"] == row["data"] and row["protocol"] == study.PROTOCOL
        assert row["reproduce"] == study.reproduce_command(study.bundled_family(row["name"]), train["max_steps"])
        assert row["reproduce"] in (CHECKPOINTS / row["name"] / "README.md").read_text()


def test_the_zoo_covers_every_preset_at_its_budget() -> None:
    assert sorted({e.preset for e in ZOO} | set(ALIASES)) == sorted(vaecore.list_models())  # an alias: one model
    assert len({e.name for e in ZOO}) == len(ZOO) and min(e.epochs for e in ZOO) >= 10
    assert {e.latent_dim for e in ZOO if e.name.endswith("-z256")} == {256}
    # tvae-100's 10 MB of weights and the latent-256 variants (5-10 MB each) go to the Hub
    assert [e.name for e in ZOO if not e.bundle] == ["tvae-100"] + [e.name for e in ZOO if e.latent == 256]
    for row in CATALOG:
        config = json.loads((CHECKPOINTS / row["name"] / "config.json").read_text())
        for key in ("model_type", "likelihood", "likelihood_kwargs", "latent_dim"):
            assert row[key] == config[key], f"{row['name']}: catalog {key} {row[key]!r} != config {config[key]!r}"
        assert row["description"] == vaecore.get_preset(config["preset"]).description
        assert row["hub_repo_id"] == f"vae-explorer/{row['name']}" and row["data"] == config["dataset"]


def test_checkpoint_files_stay_small() -> None:
    sizes = [p.stat().st_size for p in CHECKPOINTS.rglob("*") if p.is_file()]
    assert max(sizes) < 10 * 2**20, "every file under 10 MB (Hub/Space limit without LFS)"
    assert sum(sizes) < 100 * 2**20


@pytest.fixture(scope="module")
def mnist_full() -> vaecore.Dataset:
    return vaecore.load_dataset("mnist")


@pytest.mark.parametrize("row", CATALOG, ids=[r["name"] for r in CATALOG])
def test_entry_loads_and_its_declared_metrics_are_fresh(row: dict, mnist_full: vaecore.Dataset) -> None:
    folder = CHECKPOINTS / row["name"]
    model = vaecore.load(row["name"])
    assert model.config.likelihood == row["likelihood"] and model.config.latent_dim == row["latent_dim"]
    for name in ("config.json", "model.safetensors", "README.md", "metrics.jsonl", "eval.json", "train.json"):
        assert (folder / name).is_file(), f"{folder / name} missing"
    grid = rf.SAMPLES if model.capabilities.prior_samples else rf.GMM_SAMPLES  # no prior: its fitted GMM's grid
    assert (folder / grid).is_file(), f"{folder / grid} missing"
    declared = json.loads((folder / "eval.json").read_text())
    fresh = metrics.evaluate(model, mnist_full, CHECK_METRICS, n_test=CHECK_N_TEST, seed=0)
    for key in CHECK_METRICS:
        want, got = declared["check"][key], fresh[key]
        if want is None:
            assert got is None, key
        else:
            assert got == pytest.approx(want, rel=1e-3, abs=1e-3), f"{row['name']} {key}: stale checkpoint?"
    gmm_bytes = 10 * model.latent_dim ** 2 * 8  # ten full float64 covariances
    if gmm_bytes < 10 * 2**20:
        assert (folder / "sampler-gmm.safetensors").is_file(), "fitted GMM sampler shipped"
    else:  # too large to bundle (VQ latents): refitted on demand, its FD still in eval.json
        assert not (folder / "sampler-gmm.safetensors").exists() and declared["fd_gmm"] is not None


@pytest.mark.parametrize("row", CATALOG, ids=[r["name"] for r in CATALOG])
def test_card_reproduce_command_is_valid_cli(row: dict) -> None:
    card = (CHECKPOINTS / row["name"] / "README.md").read_text()
    assert row["reproduce"] in card
    argv = shlex.split(row["reproduce"])
    assert argv[:3] == ["python", "-m", "vaecore"]
    args = build_parser().parse_args(argv[3:])
    assert args.command == "train" and args.model in vaecore.list_models() and args.out.endswith(row["name"])


@pytest.fixture(scope="module")
def rendered() -> str:
    """The generated section of RESULTS.md (rendered once: it loads every bundled model)."""
    from zoo_table import render

    return render()


def test_results_are_generated_from_the_bundled_evals(rendered: str) -> None:
    from zoo_table import results_text

    text = rendered
    assert (CHECKPOINTS / "RESULTS.md").read_text() == results_text(CHECKPOINTS, text), \
        "run experiments/zoo_table.py --write"
    for row in CATALOG:
        assert f"| `{row['name']}` | {row['epochs']} |" in text
    readme = (ROOT / "README.md").read_text()
    assert "(checkpoints/RESULTS.md)" in readme, "the README links the results"
    assert "| `sigma-vae` |" not in readme, "the results tables live only in checkpoints/RESULTS.md"


def test_results_state_the_rule_and_group_by_the_real_latent_size(rendered: str) -> None:
    from zoo_table import RESULTS_HEAD

    from vaecore.evaluation.claims import CLAIM_RULE
    from vaecore.evaluation.uncertainty import RULE

    text = RESULTS_HEAD + rendered
    assert RULE in text and CLAIM_RULE in text
    assert "#### latent 784 (16 × 7 × 7 codes)" in text  # VQ-VAE and HRQ-VAE are not in the latent-16 tables
    section = text.split("#### latent 784 (16 × 7 × 7 codes)")[1].split("####")[0]
    assert "`vqvae`" in section and "`hrq-vae`" in section
    assert "mixed" not in text and "within 5 %" not in text
    for alias, same in ALIASES.items():  # one model, two names: said once, not trained or tabled twice
        assert f"`{alias}` ≡ `{same}`" in text and not (CHECKPOINTS / alias).exists()



def test_results_rank_only_models_with_per_image_values_and_mark_older_ones(rendered: str) -> None:
    import re

    from zoo_table import PENDING

    text = rendered
    ranking = text.split("### Ranking on −log p")[1].split("## The papers' claims")[0]
    ranked = re.findall(r"^\| \d+ \| `([^`]+)` \|", ranking, flags=re.M)
    with_values = [n for n in bundled_names() if (CHECKPOINTS / n / "per_image.safetensors").is_file()
                   and json.loads((CHECKPOINTS / n / "eval.json").read_text()).get("nll-discrete") is not None]
    assert sorted(ranked) == sorted(n for n in with_values if n in {e.name for e in ZOO})
    likelihood = text.split("### Likelihood and reconstruction")[1].split("### Latent usage")[0]
    for name, cells in re.findall(r"^\| `([^`]+)` \| \d+ \|(.*)\|$", likelihood, flags=re.M):
        if (CHECKPOINTS / name / "per_image.safetensors").is_file():
            assert PENDING not in cells, name  # re-evaluated: every value with its SE
        elif re.search(r"\d", cells):
            assert PENDING in cells, name  # an older evaluation's single values are marked as such

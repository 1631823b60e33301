"""Each setting declared once: the CLI's flags and the training page's widgets are generated from the config
fields' metadata, a family gets only its own settings, and no setting is silently ignored (resume, conflicts,
bounds)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

import vaecore
from vaecore import TrainConfig, cli
from vaecore.cli_flags import flag_of, model_settings, takers
from vaecore.config import EvalConfig, ModelConfig, check_value, meta_of
from vaecore.models.base import MODEL_TYPES
from vaecore.presets import build_preset

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--data", "digits", "--arch", "mlp", "--latent-dim", "4", "--no-progress", "--batch-size", "64",
        "--val-limit", "100"]


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _flags(name: str) -> dict[str, argparse.Action]:
    return {opt: a for a in _subparser(name)._actions for opt in a.option_strings}


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        cli.main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# generated, not hand-written ---------------------------------------------------------------------------
def test_every_setting_with_cli_metadata_is_a_flag_of_its_command() -> None:
    train = _flags("train")
    for cls, command in ((TrainConfig, train), (EvalConfig, _flags("eval"))):
        for f in dataclasses.fields(cls):
            flag = flag_of(cls, f.name)
            if flag:
                assert flag in command, f"{cls.__name__}.{f.name} has CLI metadata but no {flag}"
                assert command[flag].dest == f.name and meta_of(cls, f.name).help in command[flag].help
    group = next(g for g in _subparser("train")._action_groups if g.title.startswith("training settings"))
    dests = {a.dest for a in group._group_actions}
    assert dests == {f.name for f in dataclasses.fields(TrainConfig) if flag_of(TrainConfig, f.name)}, \
        "the training settings group holds exactly the generated flags"
    for name, families in model_settings().items():
        assert f"--{name.replace('_', '-')}" in train
        assert families == takers(name)


def test_every_existing_flag_name_still_parses() -> None:
    args = cli.build_parser().parse_args([
        "train", "--model", "vae", "--out", "x", "--data", "digits", "--data-dir", "d", "--epochs", "2",
        "--max-steps", "3", "--limit", "50", "--batch-size", "8", "--lr", "1e-3", "--seed", "1", "--latent-dim", "4",
        "--beta", "2", "--likelihood", "bernoulli", "--arch", "mlp", "--set", "prior=vamp", "--plateau",
        "--kl-warmup", "5", "--grad-clip", "1", "--log-every", "2", "--val-limit", "10", "--device", "cpu",
        "--no-progress", "--divergence-factor", "50", "--optimizer", "sgd", "--weight-decay", "0.1", "--momentum",
        "0.5", "--scheduler", "plateau", "--step-size", "2", "--step-gamma", "0.5", "--min-lr", "0",
        "--early-stopping", "3", "--no-keep-best", "--checkpoint-every", "9", "--no-sample-grids", "--log-to",
        "tensorboard", "--amp", "none", "--compile", "--channels-last", "--conv-autotune", "--threads", "1"])
    assert (args.kl_warmup_steps, args.keep_best, args.sample_grids, args.log_to, args.beta) == \
        (5, False, False, ["tensorboard"], 2.0)
    for command in ("eval", "sample"):
        for flag in ("--data", "--data-dir", "--seed", "--device", "--sampler", "--components"):
            assert flag in _flags(command)
    for flag in ("--metrics", "--n-test", "--iwae-k", "--fid-weights", "--json"):
        assert flag in _flags("eval")


def test_a_flag_checks_its_value_with_the_fields_own_check() -> None:
    assert check_value(TrainConfig, "seed", 3) == 3
    for argv, needle in ((["--seed", "-1"], "'seed' must be >= 0"), (["--seed", "1e23"], "whole number"),
                         (["--seed", str(10**23)], "'seed' must be <="), (["--threads", str(10**6)], "'threads'"),
                         (["--lr", "0"], "'lr' must be > 0"), (["--log-to", "neptune"], "unknown value 'neptune'")):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["train", "--out", "x", *argv])
        with pytest.raises(argparse.ArgumentTypeError, match=needle):
            _flags("train")[argv[0]].type(argv[1])


# the family owns its settings ------------------------------------------------------------------------------
def test_beta_is_described_by_each_family_and_absent_where_it_does_not_exist() -> None:
    from vaecore.models.autoencoders import WAEConfig
    from vaecore.models.beta_tc_vae import BetaTCVAEConfig
    from vaecore.models.vae import VAEConfig
    from vaecore.models.vq_vae import VQVAEConfig

    assert meta_of(VAEConfig, "beta").label == "β (KL weight)"
    assert "commitment" in meta_of(VQVAEConfig, "beta").label
    assert "total-correlation" in meta_of(BetaTCVAEConfig, "beta").label
    assert meta_of(BetaTCVAEConfig, "beta").cli and meta_of(BetaTCVAEConfig, "beta").lo == 0  # kept from VAE
    assert "beta" not in {f.name for f in dataclasses.fields(WAEConfig)}
    assert "wae" not in takers("beta") and {"vae", "vqvae", "iwae"} <= set(takers("beta"))
    help_text = _flags("train")["--beta"].help
    assert "[vqvae]" in help_text and "commitment" in help_text


def test_beta_on_a_wae_is_one_line_naming_the_families_that_take_it(capsys: pytest.CaptureFixture,
                                                                    tmp_path: Path) -> None:
    code, _, err = _run(["train", "--model", "wae-mmd-imq", "--out", str(tmp_path / "w"), *TINY, "--beta", "2"],
                        capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --beta:")
    assert "(wae) has no setting 'beta'" in lines[0] and "vqvae" in lines[0] and "iwae" in lines[0]
    code, _, err = _run(["train", "--model", "vae", "--out", str(tmp_path / "k"), *TINY, "--set", "k=3"], capsys)
    assert code == 2 and "--set k" in err and "iwae" in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "k").exists()


# no silent setting --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "needle"), [
    (["--plateau", "--scheduler", "cosine"], "'plateau' and 'scheduler' conflict"),
    (["--set", "preset=../../etc"], "--set preset"),
    (["--set", "model_type=wae"], "--set model_type"),
    (["--set", "dataset=mnist"], "the data sets it"),
])
def test_conflicting_or_fixed_settings_are_refused(argv: list[str], needle: str, capsys: pytest.CaptureFixture,
                                                   tmp_path: Path) -> None:
    code, _, err = _run(["train", "--model", "vae", "--out", str(tmp_path / "r"), *TINY, *argv], capsys)
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_empty_out_and_negative_eval_seed_are_refused(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = _run(["train", "--model", "vae", "--out", "", *TINY], capsys)
    assert code == 2 and "--out is empty" in err
    code, _, err = _run(["eval", "sigma-vae", "--seed", "-1"], capsys)
    assert code == 2 and "'seed' must be >= 0" in err
    code, _, err = _run(["sample", "sigma-vae", "--seed", str(2**40)], capsys)
    assert code == 2 and "'seed' must be <=" in err


def test_api_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(ValueError, match="'threads' must be <= 1024"):
        TrainConfig(threads=10**6)
    with pytest.raises(ValueError, match=r"setting 'augment': unknown augment key\(s\) \['nosuch'\]; valid keys"):
        TrainConfig(augment={"nosuch": 1})
    with pytest.raises(ValueError, match="conflict"):
        TrainConfig(plateau=True, scheduler="step")
    TrainConfig(plateau=True, scheduler="plateau", augment={"rotation": 10.0})
    with pytest.raises(ValueError, match="'preset' must be a name"):
        ModelConfig(preset="../../etc")
    with pytest.raises(ValueError, match="'seed' must be <="):
        EvalConfig(seed=10**23)


def test_resume_refuses_a_changed_setting_and_records_an_applied_one(capsys: pytest.CaptureFixture,
                                                                     tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = _run(["train", "--model", "sigma-vae", "--out", str(run), *TINY, "--max-steps", "3"], capsys)
    assert code == 0, err
    before = (run / "checkpoint.safetensors").read_bytes()
    for argv, needle in ((["--lr", "0.01"], "--lr 0.01 differs from the run's lr=0.001"),
                         (["--batch-size", "32"], "--batch-size 32 differs"),
                         (["--model", "vae"], "--model vae differs from the run's model 'sigma-vae'"),
                         (["--beta", "3"], "--beta 3.0 differs"),
                         (["--settings", str(tmp_path / "s.json")], "--settings describes a new run")):
        code, _, err = _run(["train", "--resume", "--out", str(run), "--no-progress", *argv], capsys)
        assert code == 2 and needle in err and err.count("\n") == 1, err
    assert (run / "checkpoint.safetensors").read_bytes() == before, "a refused resume changes nothing"
    code, out, err = _run(["train", "--resume", "--out", str(run), "--no-progress", "--max-steps", "5",
                           "--lr", "0.001", "--batch-size", "64"], capsys)  # equal values are not changes
    assert code == 0 and "finished at step 5" in out, err
    assert "resuming with --max-steps 5 (train.json had 3); recorded in train.json" in err
    assert json.loads((run / "train.json").read_text())["max_steps"] == 5
    with pytest.raises(ValueError, match="resuming cannot change lr"):
        vaecore.Trainer.resume(run, lr=0.5)


# one path from preset + data to a model -------------------------------------------------------------------
def test_the_data_sets_the_shape_and_the_config_object_is_passed_as_is() -> None:
    digits = vaecore.load_dataset("digits")
    model = build_preset("sigma-vae", data=digits, arch="mlp", latent_dim=4, seed=0)
    assert model.config.input_shape == tuple(digits.shape) and model.config.dataset == digits.name
    with pytest.raises(ValueError, match="does not match the data's images"):
        build_preset("sigma-vae", data=digits, input_shape=(1, 28, 28), arch="mlp")
    config = vaecore.model_config("iwae", input_shape=(1, 8, 8), arch="mlp", latent_dim=3)
    assert vaecore.build_model(config).config is config
    assert vaecore.build_model(config.to_dict()).config == config


# the training page ------------------------------------------------------------------------------------------
def _page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_APP_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "pages" / "1_Training_monitor.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _labels(at) -> list[str]:
    return [w.label for w in [*at.number_input, *at.selectbox, *at.select_slider, *at.checkbox, *at.text_input]]


def test_the_training_page_offers_each_family_its_own_settings(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from explorer import settings_form

    at = _page(tmp_path, monkeypatch)
    for section in ("main", "advanced", "data"):
        for name in settings_form.section(TrainConfig, section):
            label = meta_of(TrainConfig, name).label
            assert any(lab.startswith(label) for lab in _labels(at)), f"no widget for TrainConfig.{name}"
    for preset in ("wae-mmd-imq", "vqvae", "iwae", "sigma-vae"):
        at.selectbox(key="tm_preset").set_value(preset).run()
        assert not at.exception, [e.value for e in at.exception]
        labels = _labels(at)
        family = MODEL_TYPES[vaecore.PRESETS[preset].config.get("model_type", "vae")].config_class
        offered = {f.name for f in dataclasses.fields(family) if meta_of(family, f.name).app == "model"}
        for name in offered:
            assert meta_of(family, name).label in labels, (preset, name)
        betas = [lab for lab in labels if lab.startswith("β")]
        assert betas == ([] if preset == "wae-mmd-imq" else
                         ["β (commitment weight)"] if preset == "vqvae" else ["β (KL weight)"]), (preset, betas)
        likelihoods = at.selectbox(key="tm_likelihood").options
        assert ("arelbo" in likelihoods) == (preset != "iwae"), "a family's refused likelihoods are not offered"

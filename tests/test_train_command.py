"""`cli_flags.train_command`: the command a run shows parses back, through the CLI's own parser, into the same
training settings and model overrides."""

from __future__ import annotations

import shlex

import pytest

from vaecore.cli import _parse_set, build_parser
from vaecore.cli_flags import given, given_model, train_command
from vaecore.config import TrainConfig
from vaecore.presets import train_config

CASES = [
    ("sigma-vae", {"epochs": 20, "batch_size": 32, "lr": 2e-3, "data": "digits", "val_limit": 1000, "log_every": 10},
     {"latent_dim": 8}),
    ("gaussian-vae", {"epochs": 3, "data": "mnist", "limit": 5000, "seed": 7, "keep_best": False},
     {"likelihood": "gaussian", "likelihood_kwargs": {"sigma": "fixed", "value": 0.5}}),
    ("beta-vae", {"epochs": 2, "optimizer": "sgd", "momentum": 0.9, "milestones": [1, 2]}, {"beta": 4.0}),
    ("vae-plus", {"epochs": 1}, {}),
]


@pytest.mark.parametrize(("preset", "train", "overrides"), CASES)
def test_the_command_parses_back_into_the_same_run(preset: str, train: dict, overrides: dict) -> None:
    wanted = train_config(preset, **train)
    command, missing = train_command(preset, wanted.to_dict(), overrides, out="runs/x")
    assert missing == []
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "vaecore", "train"]
    args = build_parser().parse_args(argv[3:])
    assert args.model == preset and args.out == "runs/x"
    assert train_config(args.model, **given(args, TrainConfig)) == wanted
    assert {**_parse_set(args.set), **given_model(args)} == overrides


def test_settings_without_a_flag_are_named() -> None:
    wanted = train_config("vae").to_dict() | {"augment": {"kinds": ["rotation"], "rotation": 10.0}}
    _, missing = train_command("vae", wanted)
    assert missing == ["augment"]

"""The README tells the truth: its two quick-start commands are run.sh's and CI's, its links resolve, and the counts
it states are the registries' and the catalog's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import vaecore
from vaecore.samplers import SAMPLERS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
WORDS = {"ten": 10, "eleven": 11, "twelve": 12, "nine": 9, "eight": 8}


def test_the_quick_start_is_two_run_sh_commands_and_ci_runs_the_second() -> None:
    quick = README[README.index("## Quick start"):README.index("## A tour")]
    commands = re.findall(r"^(bash run\.sh \w+)", quick[quick.index("```bash"):], flags=re.M)
    assert commands[:2] == ["bash run.sh app", "bash run.sh test"], commands
    run = (ROOT / "run.sh").read_text()
    for sub in ("app", "test", "setup", "lint"):
        assert re.search(rf"^  {sub}\)", run, flags=re.M), f"run.sh has no '{sub}' command"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert "bash run.sh test" in ci and "bash run.sh lint" in ci


def test_every_relative_link_resolves() -> None:
    links = [t for t in re.findall(r"\]\(([^)#\s]+)\)", README) if not t.startswith(("http://", "https://"))]
    assert links
    missing = [t for t in links if not (ROOT / t).exists()]
    assert not missing, missing


def test_the_counts_the_readme_states_are_the_registries() -> None:
    catalog = json.loads((ROOT / "checkpoints" / "catalog.json").read_text())
    presets = int(re.search(r"(\d+) presets in all", README).group(1))
    bundled = re.search(r"bundles (\d+) models trained .*? \((\d+) more are meant for the Hub\)", README, flags=re.S)
    samplers = re.search(r"(\w+) post-hoc samplers", README).group(1).lower()
    assert presets == len(vaecore.PRESETS)
    assert (int(bundled.group(1)), int(bundled.group(2))) == (len(catalog["models"]), len(catalog["hub_models"]))
    assert (int(samplers) if samplers.isdigit() else WORDS[samplers]) == len(SAMPLERS)

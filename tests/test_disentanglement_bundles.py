"""A bundled model of the dSprites study is made first-class by experiments/disentanglement.py (`bundles`, and
`train` when it bundles a seed 0): its eval.json names the study's protocol, it gets a card with the reproduce
command, a catalog row under the study's key and reference outputs on images of its own data; rerunning changes
nothing."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from test_checkpoint_outputs import _close

from vaecore.files import CARD, CATALOG, CONFIG, EVAL, TRAIN, WEIGHTS
from vaecore.hub import CHECKPOINTS_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import disentanglement as study  # noqa: E402


def test_complete_bundle_writes_protocol_card_row_and_references(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    source = next((p.parent for p in sorted(CHECKPOINTS_DIR.glob(f"{study.BUNDLE_PREFIX}*/{EVAL}"))
                   if study.bundled_family(p.parent.name)), None)
    if source is None:
        pytest.skip("no dSprites study model is bundled")
    family = study.bundled_family(source.name)
    checkpoints, refs = tmp_path / "checkpoints", tmp_path / "bundled_outputs.json"
    dest = checkpoints / source.name
    dest.mkdir(parents=True)
    for name in (CONFIG, WEIGHTS, TRAIN):
        shutil.copy2(source / name, dest / name)
    result = json.loads((source / EVAL).read_text())
    result["settings"].pop("protocol", None)  # as an older version of the script bundled it
    (dest / EVAL).write_text(json.dumps(result))
    (checkpoints / CATALOG).write_text(json.dumps({"models": [{"name": "zoo-model"}], "aliases": {}}))
    refs.write_text(json.dumps({"zoo-model": {}}))
    monkeypatch.setattr(study, "CHECKPOINTS", checkpoints)
    monkeypatch.setattr(study, "REFERENCE_OUTPUTS", refs)

    study.complete_bundle(dest, family)
    settings = json.loads((dest / EVAL).read_text())["settings"]
    assert {k: settings[k] for k in study.protocol_settings()} == study.protocol_settings()
    steps = json.loads((dest / TRAIN).read_text())["max_steps"]
    card = (dest / CARD).read_text()
    assert study.reproduce_command(family, steps) in card and study.PROTOCOL in card and "far below" in card
    catalog = json.loads((checkpoints / CATALOG).read_text())
    assert catalog["models"] == [{"name": "zoo-model"}]  # the zoo's rows are left alone
    row, = catalog[study.CATALOG_KEY]
    assert row["name"] == source.name and row["family"] == family and row["protocol"] == study.PROTOCOL
    assert row["title"].startswith(study.title(family)) and row["steps"] == steps
    written = json.loads(refs.read_text())
    committed = json.loads((Path(__file__).parent / "data" / "bundled_outputs.json").read_text())[source.name]
    assert sorted(written[source.name]) == sorted(committed)
    for key in committed:  # the committed reference, recomputed (to the float64 tolerance of that test)
        _close(written[source.name][key], committed[key])
    assert set(written) == {"zoo-model", source.name}

    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    study.complete_bundle(dest, family)  # idempotent
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert len(json.loads((checkpoints / CATALOG).read_text())[study.CATALOG_KEY]) == 1


def test_names_of_the_study_bundles() -> None:
    assert [study.bundled_family(study.bundle_name(f)) for f in study.FAMILIES] == list(study.FAMILIES)
    assert study.bundled_family("vae") is None and study.bundled_family("dsprites-unknown") is None

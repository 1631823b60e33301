"""The home page's zoo table: every bundled model once, its numbers the engine's and its stored evaluation's, the
engine's health flags, filters, and picked rows side by side on the same test images (AppTest on checkpoints/)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from budget import seconds
from streamlit.testing.v1 import AppTest

from explorer import widgets, zoo
from vaecore.evaluation.registry import METRICS
from vaecore.hub import bundled_names, checkpoints_dir, load_folder
from vaecore.models.families import family_title
from vaecore.presets import capabilities_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    if len(bundled_names()) < 4:
        pytest.skip("needs the bundled checkpoints")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAE_APP_RUNS", str(tmp_path_factory.mktemp("runs")))
        mp.setenv("VAE_APP_CACHE", str(tmp_path_factory.mktemp("cache")))
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=seconds(240)).run()
        assert not at.exception, [e.value for e in at.exception]
        yield at


def _same(a: object, b: object) -> bool:
    if b is None:
        return a is None or (isinstance(a, float) and math.isnan(a))
    return a == b


def test_every_bundled_model_once_with_the_engines_facts_and_its_evaluation(home) -> None:
    frame = home.dataframe[0].value
    assert [METRICS[k].short_title for k in zoo.TABLE_METRICS] == [c for c in frame.columns if c in
                                                                  {METRICS[k].short_title for k in METRICS}]
    names = [n for cell in frame["model"] for n in cell.replace(" (= ", ", ").rstrip(")").split(", ")]
    assert sorted(names) == sorted(bundled_names())  # each once: a preset that trains the same model is an alias
    for _, row in frame.iterrows():
        name = row["model"].split(" (= ")[0]
        folder = checkpoints_dir() / name
        config = json.loads((folder / "config.json").read_text())
        result = json.loads((folder / "eval.json").read_text())
        assert row["family"] == family_title(config.get("model_type", "vae"))
        assert row["latent"] == "×".join(str(n) for n in capabilities_of(config).latent_shape)
        assert row["test images"] == result["settings"]["n_test"]
        for key in zoo.TABLE_METRICS:
            assert _same(row[METRICS[key].short_title], result.get(key)), (name, key)
        for key, column in zoo.SPREAD_COLUMNS.items():  # each value's ±, none from an evaluation that stored none
            stored = (result.get("uncertainty") or {}).get(key) if result.get(key) is not None else None
            want = None if stored is None else stored["sd"] if stored["over"] == "seeds" else stored["se"]
            assert _same(row[column], want), (name, column)


def test_broken_models_are_flagged_and_good_ones_not(home) -> None:
    frame = home.dataframe[0].value.set_index("model")
    flags = {m.split(" (= ")[0]: f for m, f in frame["flags"].items()}
    expected = {"arelbo-diag-d": "blank samples", "wae-mmd-rbf": "faint samples",
                "beta-likelihood-vae": "faint samples"}
    for name, flag in expected.items():
        if name in flags:
            assert flag in flags[name], (name, flags[name])
    assert flags.get("sigma-vae", "") == "" and flags.get("iwae", "") == ""


def test_filters_and_picked_rows_side_by_side_on_the_same_images(home, monkeypatch: pytest.MonkeyPatch) -> None:
    home.text_input(key="zoo_filter").set_value("arelbo").run()
    frame = home.dataframe[0].value
    assert len(frame) >= 1 and all("arelbo" in m or "arelbo" in lk for m, lk in zip(frame["model"],
                                                                                    frame["likelihood"], strict=True))
    home.text_input(key="zoo_filter").set_value("").run()
    frame = home.dataframe[0].value
    picked = [int(i) for i in frame.index[frame["model"].isin(["sigma-vae", "iwae"])]]
    shown: list[torch.Tensor] = []
    original = widgets.show_images
    monkeypatch.setattr(widgets, "show_images", lambda images, *a, **k: (shown.append(images.clone()),
                                                                          original(images, *a, **k))[1])
    home.session_state["zoo_table"] = {"selection": {"rows": picked, "columns": []}}
    home.run()
    assert not home.exception, [e.value for e in home.exception]
    assert "Side by side" in [s.value for s in home.subheader]
    x = shown[0]  # the test images, then per model: its reconstructions of them and its samples
    assert x.shape[0] == 8
    for k, name in enumerate(frame["model"][picked]):
        model = load_folder(checkpoints_dir() / name).eval()
        with torch.no_grad():
            expected = model.reconstruct(x)
        assert torch.allclose(shown[1 + 2 * k], expected, atol=1e-5), name

"""'Evaluate this run': the zoo's protocol in the background writes a run's eval.json and per-image values, after
which the run ranks with the bundled models on the same test images (job manager, zoo table, the engine's ranking)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from budget import seconds

from explorer import zoo
from explorer.jobs import JobError, JobManager
from vaecore.evaluation import protocol
from vaecore.evaluation.metrics import image_set
from vaecore.evaluation.per_image import load_per_image
from vaecore.evaluation.ranking import rank
from vaecore.hub import bundled_names, checkpoints_dir

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import disentanglement as study  # noqa: E402  (the dSprites study's bundled models follow its own protocol)

TINY = {"data": "mnist", "limit": 2000, "max_steps": 5, "log_every": 5, "val_limit": 100, "batch_size": 64,
        "sample_grids": False}


def test_the_bundled_evaluations_follow_the_protocol() -> None:
    """A run evaluated with the protocol is on the bundled models' test images: their settings are the protocol's.
    The dSprites study's bundled models (checkpoints/dsprites-<family>) follow the study's protocol, and say so."""
    names = [n for n in bundled_names() if (checkpoints_dir() / n / "eval.json").is_file()]
    if not names:
        pytest.skip("no bundled evaluations")
    wanted = protocol.settings()
    for name in names:
        s = json.loads((checkpoints_dir() / name / "eval.json").read_text())["settings"]
        if study.bundled_family(name):
            theirs = study.protocol_settings()
            assert {k: s.get(k) for k in theirs} == theirs, \
                f"{name}: not the study's protocol (run python experiments/disentanglement.py bundles)"
            continue
        assert {k: s.get(k) for k in ("n_test", "seed", "n_samples")} == {k: wanted[k] for k in
                                                                           ("n_test", "seed", "n_samples")}, name
        assert s.get("iwae_k") == protocol.IWAE_K and s.get("first_image", 0) == 0, name


def test_an_evaluated_run_ranks_with_others_on_the_same_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "N_TEST", 200)  # the protocol's pipeline on fewer images and draws (a CPU minute)
    monkeypatch.setattr(protocol, "IWAE_K", 10)
    manager = JobManager(tmp_path, max_running=1, threads=1)
    run = manager.start("sess01", "sigma-vae", TINY, arch="mlp", latent_dim=4)
    with pytest.raises(JobError, match="still training"):
        manager.evaluate("sess01", run.name)
    assert run.wait(seconds(300)) and run.status == "finished"
    job = manager.evaluate("sess01", run.name, samplers=())  # the fitted samplers' columns are left 'not run'
    stages = set()
    end = time.monotonic() + seconds(600)
    while (job.alive or job.status == "queued") and time.monotonic() < end:
        stages.add(job.stage)
        time.sleep(0.1)
    assert job.status == "finished", job.message
    assert len(stages) >= 2  # the page's progress bar moves through the protocol's stages
    result = json.loads((run.folder / "eval.json").read_text())
    assert result["settings"]["n_test"] == protocol.N_TEST and result["settings"]["iwae_k"] == protocol.IWAE_K
    store = load_per_image(run.folder)
    assert store.estimate("nll-discrete").value == pytest.approx(result["nll-discrete"], rel=1e-12)
    row = zoo.run_rows([run.folder])[0]
    assert row.values["nll-discrete"] == result["nll-discrete"] and row.se == store.estimate("nll-discrete").se
    events = [r.get("event") for r in map(json.loads, (run.folder / "metrics.jsonl").read_text().splitlines())
              if r.get("kind") == "event"]
    assert events == ["started", "finished"]  # the evaluation leaves the training log alone
    second = manager.start("sess01", "sigma-vae", {**TINY, "seed": 1}, arch="mlp", latent_dim=4)
    assert second.wait(seconds(300)) and second.status == "finished"
    other = manager.evaluate("sess01", second.name, samplers=())
    end = time.monotonic() + seconds(600)
    while (other.alive or other.status == "queued") and time.monotonic() < end:
        time.sleep(0.1)
    other_result = json.loads((second.folder / "eval.json").read_text())
    assert image_set(other_result) == image_set(result)
    ranking = rank({"a": result, "b": other_result}, "nll-discrete",
                   per_image={"a": store, "b": load_per_image(second.folder)})
    assert sorted(r.model for r in ranking.rows) == ["a", "b"], ranking.apart

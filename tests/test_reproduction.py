"""The reproduction board end to end at a tiny budget: rows train resumably, write their result files (curve and
per-image −log p), and the board is generated from those files alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
import reproduction as repro  # noqa: E402

from vaecore.evaluation.reference import REPRODUCTION_MNIST_NLL  # noqa: E402

ROWS = "iwae-k1,iwae-k5,pythae-svae"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("repro")
    threads = torch.get_num_threads()
    repro.main(["--tiny", "--epochs", "2", "--rows", ROWS, "--out", str(base / "out"), "--runs", str(base / "runs")])
    torch.set_num_threads(threads)
    return base


def test_every_row_has_its_budget_and_settings():
    assert [r.id for r in repro.ROWS] == list(REPRODUCTION_MNIST_NLL)  # one published value per row, same order
    assert sorted(repro.ORDER) == sorted(repro.ROW_BY_ID)
    iwae = repro.ROW_BY_ID["iwae-k50"]
    # Burda et al.: lr 1e-3·10^(−i/7) for 3^i passes, i = 0..7: the decays after 1, 1+3, 1+3+9, ... epochs
    assert iwae.train["milestones"] == [sum(3 ** j for j in range(i + 1)) for i in range(7)]
    assert iwae.published_epochs == sum(3 ** i for i in range(8)) == 3280
    assert iwae.train["step_gamma"] == pytest.approx(10 ** (-1 / 7))
    assert (iwae.train["batch_size"], iwae.train["eps"], iwae.model["arch"]) == (20, 1e-4, "iwae-mlp")
    for row in repro.ROWS:
        repro.train_config(row, repro.Budget(epochs=1), 1, 50_000)  # every row's settings are valid


def test_rows_write_curves_and_per_image_values(tiny: Path):
    for rid in ROWS.split(","):
        res = json.loads((tiny / "out" / f"{rid}.json").read_text())
        assert res["status"] == "done" and res["budget"]["epochs"] == 2
        assert [p["epoch"] for p in res["curve"]] == [1, 2]
        assert all(p["k"] == 4 and p["n_images"] == 8 and p["nll"] > 0 for p in res["curve"])
        fin = res["final"]
        assert fin["n_images"] == len(fin["per_image"]) == 8 and fin["k"] == 4
        assert fin["nll"] == pytest.approx(sum(fin["per_image"]) / 8, abs=1e-3)
        assert res["eval"]["test_seed"] == 2 and res["train"]["binarize"] in ("dynamic", "static")


def test_the_estimate_is_the_engines_iwae_on_the_fixed_binarized_test_images(tiny: Path):
    from vaecore.data.binarize import binarized_split
    from vaecore.data.datasets import load_dataset
    from vaecore.evaluation.metrics import iwae_log_likelihood
    from vaecore.hub import load_folder

    res = json.loads((tiny / "out" / "iwae-k1.json").read_text())
    model = load_folder(tiny / "runs" / "iwae-k1")
    x = binarized_split(load_dataset("mnist").x_test, "test")[:8]
    want = -iwae_log_likelihood(model, x, k=4, batch_size=100, generator=torch.Generator().manual_seed(0))
    assert res["final"]["per_image"] == pytest.approx(want.tolist(), abs=1e-3)


def test_finished_rows_are_skipped_and_an_extended_budget_resumes(tiny: Path, capsys: pytest.CaptureFixture):
    before = (tiny / "runs" / "iwae-k1" / "metrics.jsonl").read_text()
    repro.main(["--tiny", "--epochs", "2", "--rows", "iwae-k1", "--out", str(tiny / "out"), "--runs",
                str(tiny / "runs")])
    assert "skipped" in capsys.readouterr().out
    assert (tiny / "runs" / "iwae-k1" / "metrics.jsonl").read_text() == before
    repro.main(["--tiny", "--epochs", "3", "--rows", "iwae-k1", "--out", str(tiny / "out"), "--runs",
                str(tiny / "runs")])
    res = json.loads((tiny / "out" / "iwae-k1.json").read_text())
    assert [p["epoch"] for p in res["curve"]] == [1, 2, 3] and res["budget"]["epochs"] == 3
    records = [json.loads(line) for line in (tiny / "runs" / "iwae-k1" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r.get("kind") == "epoch"]
    assert steps == [5, 10, 15]  # 100 images / batch 20 = 5 steps per epoch, resumed, never retrained


def test_board_is_generated_from_the_result_files(tiny: Path):
    out, doc, results_md = tiny / "out", tiny / "board.md", tiny / "RESULTS.md"
    results_md.write_text("# Results\n\nother sections stay\n")
    repro.main(["--report", "--out", str(out), "--doc", str(doc), "--results-md", str(results_md)])
    text = doc.read_text()
    res = json.loads((out / "iwae-k5.json").read_text())
    mean, se = repro.mean_se(res["final"]["per_image"])
    assert f"{mean:.2f} ± {se:.2f}" in text
    assert "86.76" in text and "84.78" in text and "not run" in text  # published values; rows without files
    assert "other sections stay" in results_md.read_text() and repro.BEGIN in results_md.read_text()
    # change a file: the board follows it, and regenerating replaces the RESULTS section instead of adding one
    res["final"]["per_image"] = [v + 10.0 for v in res["final"]["per_image"]]
    (out / "iwae-k5.json").write_text(json.dumps(res))
    repro.main(["--report", "--out", str(out), "--doc", str(doc), "--results-md", str(results_md)])
    assert f"{mean + 10:.2f} ± {se:.2f}" in doc.read_text()
    assert results_md.read_text().count(repro.BEGIN) == 1


def test_paired_differences_need_the_same_images():
    a = {"final": {"per_image": [3.0, 5.0, 4.0], "n_images": 3, "first_image": 0, "k": 4}, "eval": {"test_seed": 2}}
    b = {"final": {"per_image": [1.0, 2.0, 3.0], "n_images": 3, "first_image": 0, "k": 4}, "eval": {"test_seed": 2}}
    diffs = [2.0, 3.0, 1.0]
    mean = sum(diffs) / 3
    se = (sum((d - mean) ** 2 for d in diffs) / 2 / 3) ** 0.5
    assert repro.paired(a, b) == f"{mean:+.2f} ± {se:.2f} (higher)"
    other = {**b, "final": {**b["final"], "n_images": 2, "per_image": [1.0, 2.0]}}
    assert "different test images" in repro.paired(a, other)
    assert repro.paired(a, None) == "–"


def test_budgets_and_curve_epochs():
    assert repro.curve_epochs(10) == list(range(1, 11))
    assert repro.curve_epochs(3280)[:6] == [1, 2, 3, 5, 10, 20] and repro.curve_epochs(3280)[-1] == 3280
    full = repro.Budget(epochs=None)
    assert [repro.row_epochs(r, full) for r in repro.ROWS][:1] == [3280]
    assert repro.row_epochs(repro.ROW_BY_ID["pythae-pvae"], full) == 80
    assert repro.row_epochs(repro.ROW_BY_ID["pythae-pvae"], repro.Budget(epochs=10)) == 10
    for bad in (["--epochs", "0"], ["--epochs", "ten"], [], ["--epochs", "1", "--rows", "nope"]):
        with pytest.raises(SystemExit):
            repro.main(bad)


def test_standard_error_and_paired_rules_of_the_board():
    import numpy as np
    from scipy import stats

    from vaecore.evaluation import reproduction as board

    values = [86.1, 90.3, 84.0, 101.2, 88.8]
    mean, se = board.mean_se(values)
    assert mean == pytest.approx(np.mean(values), abs=1e-12) and se == pytest.approx(stats.sem(values), abs=1e-12)

    def res(per_image, seed=2):
        return {"final": {"per_image": per_image, "k": 5000, "n_images": len(per_image), "first_image": 0},
                "eval": {"test_seed": seed}, "curve": [], "budget": {"epochs": 3}}

    a, b = res([90.0, 91.0, 95.0]), res([88.0, 90.5, 92.0])
    d, d_se = board.paired_difference(a, b)
    assert (d, d_se) == pytest.approx(board.mean_se([2.0, 0.5, 3.0]))
    with pytest.raises(ValueError, match="same test images"):
        board.paired_difference(a, res([88.0, 90.5, 92.0], seed=3))
    with pytest.raises(ValueError, match="same test images"):
        board.paired_difference(a, res([88.0, 90.5]))
    assert board.reached(86.0, 0.5, 85.0) and not board.reached(86.1, 0.5, 85.0) and board.reached(80.0, 0.5, 85.0)
    rows = {r["row"]: r for r in board.board_rows({"iwae-k5": res([85.0, 86.0, 87.0])}, "iwae")}
    assert rows["iwae-k5"]["status"] == "done" and rows["iwae-k5"]["gap"] == pytest.approx(86.0 - 85.54)
    assert rows["iwae-k50"]["status"] == "not run" and rows["iwae-k50"]["nll"] is None


def test_poincare_draws_that_saturate_at_the_boundary_make_the_estimate_invalid():
    import vaecore
    from vaecore.evaluation import reproduction as board

    torch.manual_seed(0)
    model = vaecore.build_preset("poincare-vae", arch="pvae-mlp", latent_dim=4, curvature=0.7)
    x = (torch.rand(6, 1, 28, 28) < 0.3).float()
    assert board.unrepresentable_fraction(model, x, n=20) == 0.0
    last = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias[4:] = 20.0  # log σ² = 20: tangent draws of length ~e^10 end on the boundary in float32
    assert board.unrepresentable_fraction(model, x, n=20) == 1.0
    assert board.unrepresentable_fraction(vaecore.build_preset("iwae", arch="iwae-mlp", latent_dim=4), x) is None
    res = {"final": {"per_image": [40.0, 41.0], "k": 500, "first_image": 0, "unrepresentable": 1.0},
           "eval": {"test_seed": 2}, "curve": [], "budget": {"epochs": 1}}
    item = next(r for r in board.board_rows({"pythae-pvae": res}) if r["row"] == "pythae-pvae")
    assert item["valid"] is False and item["gap"] is None and item["reached"] is None
    assert repro._ours(item).startswith("invalid")


def test_rescore_recomputes_the_final_estimate_without_training(tiny: Path):
    path = tiny / "out" / "pythae-svae.json"
    before = json.loads(path.read_text())
    log = (tiny / "runs" / "pythae-svae" / "metrics.jsonl").read_text()
    before["final"]["per_image"] = [0.0] * 8  # a stale estimate the rescore must replace
    path.write_text(json.dumps(before))
    repro.main(["--tiny", "--epochs", "2", "--rows", "pythae-svae", "--out", str(tiny / "out"), "--runs",
                str(tiny / "runs"), "--rescore"])
    after = json.loads(path.read_text())
    assert after["status"] == "done" and min(after["final"]["per_image"]) > 0
    assert after["curve"] == before["curve"]
    assert (tiny / "runs" / "pythae-svae" / "metrics.jsonl").read_text() == log


def test_the_budget_gap_is_stated_from_the_result_files():
    from vaecore.evaluation import reproduction as board

    def res(epochs, curve):
        return {"final": {"per_image": [90.0, 91.0], "k": 5000, "first_image": 0}, "eval": {"test_seed": 2},
                "curve": [{"epoch": i + 1, "nll": v, "se": 1.0, "k": 200, "n_images": 2} for i, v in enumerate(curve)],
                "budget": {"epochs": epochs}}

    falling = {"iwae-k1": res(10, [110.0, 101.0]), "pythae-vae": res(10, [120.0, 118.5])}
    text = board.budget_text(falling)
    assert "**The budget gap**: the 2 finished row(s) trained 0.3–2.0% of their published budgets (500–3280 epochs)" \
        in text  # 10 of 3280 and 10 of 500 epochs
    assert "still lowered its −log p(x) curve, by 1.5–9.0 nats: none is near convergence" in text
    flat = board.budget_text({"iwae-k1": res(10, [101.0, 101.5])})
    assert "none is near convergence" not in flat and "moved by -0.5 nats" in flat
    assert board.budget_gap({}) == ""
    a, b = falling["iwae-k1"], {**falling["pythae-vae"], "eval": {"test_seed": 3}}
    with pytest.raises(ValueError, match="not the same test images"):  # the project's paired difference refuses it
        board.paired_difference(a, b)

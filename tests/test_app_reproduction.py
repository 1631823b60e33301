"""The Benchmark page's reproduction board: its tables and curves read the result files of
experiments/reproduction.py (here from a real tiny run), and an empty results folder says how to fill it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
import reproduction as repro  # noqa: E402

from vaecore.evaluation import reproduction as board  # noqa: E402

PAGE = ROOT / "pages" / "7_Benchmark.py"
ROWS = ("vae-k5", "iwae-k5")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("repro_app")
    threads = torch.get_num_threads()
    repro.main(["--tiny", "--epochs", "2", "--rows", ",".join(ROWS), "--out", str(base / "out"), "--runs",
                str(base / "runs")])
    torch.set_num_threads(threads)
    return base / "out"


def _run(folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_REPRODUCTION_RESULTS", str(folder))
    monkeypatch.setenv("VAE_APP_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(PAGE), default_timeout=240)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_board_tables_and_curves_come_from_the_result_files(results: Path, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path):
    at = _run(results, monkeypatch, tmp_path)
    assert "Reproduction board" in [h.value for h in at.header]
    frames = [df.value for df in at.dataframe]
    iwae = next(v for v in frames if "−log p(x), ours" in v.columns and "IWAE, k = 5" in set(v["row"]))
    for rid in ROWS:
        res = json.loads((results / f"{rid}.json").read_text())
        mean, se = board.mean_se(res["final"]["per_image"])
        line = iwae[iwae["row"] == board.ROW_BY_ID[rid].label].iloc[0]
        assert line["−log p(x), ours"] == pytest.approx(mean) and line["± SE"] == pytest.approx(se)
        assert line["status"] == "done" and line["epochs"] == 2 and line["test images"] == 8
    assert set(iwae[iwae["row"] == "IWAE, k = 50"]["status"]) == {"not run"}
    paired = next(v for v in frames if "IWAE − VAE, ours" in v.columns)
    a, b = (json.loads((results / f"{r}.json").read_text()) for r in ("iwae-k5", "vae-k5"))
    assert paired[paired["k"] == 5]["IWAE − VAE, ours"].iloc[0] == pytest.approx(board.paired_difference(a, b)[0])
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert sorted(t["name"] for t in spec["data"]) == sorted(ROWS)
    assert all(len(t["x"]) == 2 for t in spec["data"])
    assert any("Budget" in m.value for m in at.markdown)


def test_an_empty_results_folder_says_how_to_fill_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    at = _run(tmp_path / "none", monkeypatch, tmp_path)
    assert any("experiments/reproduction.py" in i.value for i in at.info)

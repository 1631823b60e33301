"""Bad command lines end in one `error:` line on stderr and a non-zero exit, never a traceback.

Most cases run the CLI in-process (`vaecore.cli.main([...])`), so the whole table takes seconds; a few run
as real subprocesses (a broken pipe, `--debug`, the console entry point).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from budget import seconds

import vaecore
from vaecore import TrainConfig, cli

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--data", "digits", "--arch", "mlp", "--latent-dim", "4", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny finished run, a copy with a corrupt train.json, bad data files, a folder and a plain file."""
    root = tmp_path_factory.mktemp("cli")
    run = root / "runs" / "tiny"
    vaecore.train("sigma-vae", vaecore.load_dataset("digits"), run, TrainConfig(max_steps=3, batch_size=64),
                  arch="mlp", latent_dim=4)
    corrupt = root / "corrupt"
    shutil.copytree(run, corrupt)
    (corrupt / "train.json").write_text("{not json")
    twin = root / "other" / "tiny"  # same folder name as `run`
    shutil.copytree(run, twin)
    (root / "text.npy").write_text("this is not an array\n")
    (root / "settings_list.json").write_text("[1, 2]")
    (root / "settings_bad_train.json").write_text(json.dumps({"preset": "sigma-vae", "train": {"lr": -1}}))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10**12, 28, 28)})
    (root / "huge.npy").write_bytes(header.getvalue() + b"\0" * 64)
    (root / "plain.txt").write_text("x")
    (root / "folder").mkdir()
    return {"root": root, "run": run, "corrupt": corrupt, "twin": twin, "text": root / "text.npy",
            "huge": root / "huge.npy", "file": root / "plain.txt", "folder": root / "folder",
            "settings_list": root / "settings_list.json", "settings_bad_train": root / "settings_bad_train.json"}


def _cases(f: dict[str, Path]) -> list[list[str]]:
    out, run, root = str(f["root"] / "new-run"), str(f["run"]), f["root"]
    train = ["train", "--model", "sigma-vae", "--out", out, *TINY]
    cases = [
        [*train, "--batch-size", "0"], [*train, "--batch-size", "-4"], [*train, "--batch-size", "abc"],
        [*train, "--log-every", "0"], [*train, "--lr", "-1"], [*train, "--lr", "nan"], [*train, "--lr", "0"],
        [*train, "--lr", "inf"], [*train, "--device", "nosuch"], [*train, "--set", "beta=abc"],
        [*train, "--set", "input_shape=[3,8,8]"], [*train, "--set", "input_shape=5"],
        ["train", "--model", "iwae", "--out", out, *TINY, "--set", "iwae_k=0"],
        ["train", "--model", "vamp-vae", "--out", out, *TINY, "--set", "vamp_components=0"],
        [*train, "--grad-clip", "-1"], [*train, "--kl-warmup", "-1"], [*train, "--val-limit", "0"],
        [*train, "--max-steps", "0"], [*train, "--epochs", "0"], [*train, "--epochs", "-1"], [*train, "--beta", "-1"],
        [*train, "--limit", "0"], [*train, "--set", "nosuch=1"], [*train, "--set", "noequals"],
        [*train, "--seed", "-1"], [*train, "--checkpoint-every", "0"],
        ["train", "--model", "nosuch", "--out", out, *TINY], ["train", "--out", out, *TINY],
        ["train", "--model", "sigma-vae", "--out", out, "--data", "nosuch", "--no-progress"],
        ["train", "--model", "sigma-vae", "--out", out, "--data", str(root / "missing.npz"), "--no-progress"],
        ["train", "--model", "sigma-vae", "--out", out, "--data", str(f["text"]), "--no-progress"],
        ["train", "--model", "sigma-vae", "--out", out, "--data", str(f["huge"]), "--no-progress"],
        ["train", "--model", "sigma-vae", "--out", str(f["file"]), *TINY[:-1]],
        ["train", "--model", "sigma-vae", "--out", run, *TINY],  # already holds a run
        ["train", "--out", str(f["folder"]), "--resume", "--no-progress"],
        ["train", "--out", str(f["corrupt"]), "--resume", "--no-progress"],
        ["eval", run, "--sampler", "nosuch"], ["eval", run, "--n-test", "0"], ["eval", run, "--iwae-k", "0"],
        ["eval", run, "--components", "0"], ["eval", run, "--metrics", "nosuch"], ["eval", run, "--metrics", ","],
        ["eval", run, "--sampler", "gmm", "--components", "1000000"], ["eval", run, "--device", "nosuch"],
        ["eval", str(root / "runs" / "typo")], ["eval", str(f["corrupt"])], ["eval", run, "--data", "mnist"],
        ["sample", run, "--n", "0"], ["sample", run, "--n", "-3"], ["sample", run, "--sampler", "nosuch"],
        ["sample", run, "--out", str(f["folder"])], ["sample", run, "--out", str(root / "no" / "such" / "x.png")],
        ["sample", run, "--out", "/dev/null/x.png"],
        ["compare", run, str(f["twin"]), "--layout", "nosuch"], ["compare", run, "--metrics", "nosuch"],
        ["compare", run, "sigma-vae", "--n-test", "10"],  # 8x8 digits vs 28x28 MNIST
        ["compare", run, "--sampler", "nosuch"], ["compare", run, "--n-test", "0"],
        ["compare", run, "--out", str(f["folder"])],
        ["publish", str(root / "missing"), "user/repo"],
        ["train", "--out", out, "--settings", str(root / "missing.json"), "--no-progress"],
        ["train", "--out", out, "--settings", str(f["text"]), "--no-progress"],  # not JSON
        ["train", "--out", out, "--settings", str(f["settings_list"]), "--no-progress"],  # JSON, not the settings
        ["train", "--out", out, "--settings", str(f["settings_bad_train"]), "--no-progress"],
        [], ["nosuch"], ["list-models", "extra"],
    ]
    if not torch.cuda.is_available():
        cases += [[*train, "--device", "cuda"], ["eval", run, "--device", "cuda"]]
    return cases


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        cli.main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def test_bad_command_lines_give_one_error_line(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    cases = _cases(files)
    assert len(cases) >= 40
    bad = []
    for argv in cases:
        code, err = _run(argv, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        if code == 0 or len(lines) != 1 or not lines[0].startswith("error:") or "Traceback" in err:
            bad.append((argv, code, err[-500:]))
    assert not bad, "\n".join(f"{a} -> exit {c}: {e!r}" for a, c, e in bad)
    assert not (files["root"] / "new-run" / "checkpoint.safetensors").exists(), "no bad command started a run"


@pytest.mark.parametrize(("argv", "needle"), [
    (["--batch-size", "0"], "batch_size"), (["--lr", "-1"], "lr"), (["--device", "nosuch"], "device"),
    (["--max-steps", "0"], "max_steps"), (["--set", "beta=abc"], "beta"), (["--set", "input_shape=[3,8,8]"],
                                                                           "input_shape"),
])
def test_the_error_names_what_to_fix(argv: list[str], needle: str, files: dict[str, Path],
                                     capsys: pytest.CaptureFixture) -> None:
    code, err = _run(["train", "--model", "sigma-vae", "--out", str(files["root"] / "x"), *TINY, *argv], capsys)
    assert code == 2 and needle in err, err


def test_compare_keeps_both_models_whose_folders_share_a_name(files: dict[str, Path],
                                                              capsys: pytest.CaptureFixture) -> None:
    out = files["root"] / "cmp.md"
    code, err = _run(["compare", str(files["run"]), str(files["twin"]), "--n-test", "20", "--metrics", "elbo,mse",
                      "--data", "digits", "--out", str(out)], capsys)
    assert code == 0, err
    rows = json.loads(out.with_suffix(".json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    assert len({r["model"] for r in rows}) == 2


def _sub(*args: str, shell: str | None = None) -> subprocess.CompletedProcess:
    cmd = shell if shell else [sys.executable, "-m", "vaecore", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds(300), shell=bool(shell))


def test_subprocess_errors_broken_pipe_and_debug(files: dict[str, Path]) -> None:
    r = _sub(shell=f"{sys.executable} -m vaecore list-models | head -1")
    assert r.returncode == 0 and "Traceback" not in r.stderr and "Error" not in r.stderr, r.stderr
    r = _sub("eval", str(files["run"]), "--n-test", "0")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error:"), r.stderr
    r = _sub("eval", str(files["root"] / "runs" / "typo"), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr

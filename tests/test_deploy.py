"""Deployment check: replay the Dockerfile's steps without a container engine.

The Dockerfile's steps are read from the file itself and replayed: a fresh virtualenv (seeded from this
machine's installed packages, offline) into which its `pip install` lines must resolve with the pinned
versions; the repository copied as `COPY . .` would (honouring .dockerignore) and made read-only; the
app started with the Dockerfile's CMD as a non-root user (nobody) with HOME, runs, caches and the Hub
cache redirected to a writable folder; its HEALTHCHECK run; the home page rendered in Chromium and a
training started, which must write its run only to the writable folder.

Needs root (to switch to the non-root user and to make the interpreter readable to it in a private
mount namespace: this machine's Python lives under /root). Skipped otherwise, or without Chromium.
What a real image build would still need is listed in docs/deploy.md.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest
from budget import ms, seconds

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
USER = 65534  # nobody: the image runs as an unprivileged user (UID 1000 there)
pytestmark = [pytest.mark.slow]


def dockerfile_steps(text: str) -> list[tuple[str, str]]:
    """(instruction, argument) pairs of a Dockerfile, continuation lines joined, comments dropped."""
    steps, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            word, _, rest = current.partition(" ")
            steps.append((word.upper(), rest.strip()))
            current = ""
    return steps


def dockerfile_env(steps: list[tuple[str, str]]) -> dict[str, str]:
    """The ENV settings of a Dockerfile (KEY=value pairs)."""
    env: dict[str, str] = {}
    for word, arg in steps:
        if word == "ENV":
            for pair in shlex.split(arg):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves a relative path out of the build context."""
    parts = path.split("/")
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(p, pattern[3:]) for p in parts):
                return True
        elif fnmatch.fnmatch(path, pattern) or any(fnmatch.fnmatch("/".join(parts[:i]), pattern)
                                                   for i in range(1, len(parts))):
            return True
    return False


def test_dockerfile_parses_into_the_expected_steps() -> None:
    steps = dockerfile_steps((ROOT / "Dockerfile").read_text())
    words = [w for w, _ in steps]
    assert words[0] == "FROM" and "USER" in words and words[-1] == "CMD"
    runs = [a for w, a in steps if w == "RUN"]
    assert any("useradd" in r and "--uid 1000" in r for r in runs)
    torch_cpu = r"pip install torch==[\d.]+ --index-url https://download.pytorch.org/whl/cpu"
    assert any(re.search(torch_cpu, r) for r in runs)
    assert any("pip install -r requirements.txt" in r for r in runs)
    cmd = next(a for w, a in steps if w == "CMD")
    assert '"app.py"' in cmd and "8501" in cmd
    assert ignored("runs/app/x", ["runs"]) and ignored("a/__pycache__/b.pyc", ["**/__pycache__"])
    assert not ignored("pages/1_Training_monitor.py", ["runs", "**/__pycache__"])


@pytest.fixture
def request_cleanup() -> object:
    """Folders to remove after the test (made writable first: the app copy is read-only)."""
    folders: list[Path] = []
    yield folders
    for folder in folders:
        for p in [folder, *folder.rglob("*")]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(args: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", *args]


@pytest.mark.timeout(seconds(600))
def test_replay_the_dockerfile_as_a_non_root_user_on_a_read_only_copy(tmp_path: Path,
                                                                    request_cleanup: list[Path]) -> None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("needs root with unshare and setpriv to run the app as a non-root user")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing")
    pytest.importorskip("playwright.sync_api")
    steps = dockerfile_steps((ROOT / "Dockerfile").read_text())
    env_lines = dockerfile_env(steps)
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="vae-image-", dir="/tmp"))  # pytest's tmp folders are private to root
    os.chmod(base, 0o755)
    request_cleanup.append(base)
    writable = base / "home"
    writable.mkdir()
    os.chmod(writable, 0o777)
    app = base / "app"

    # COPY . . with .dockerignore, then the copy is read-only for the app's user
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, tracked):
        if ignored(rel, patterns) or not (ROOT / rel).is_file():
            continue
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, app / rel)
    for p in [app, *app.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod((mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (0o555 if p.is_dir() else 0))
                & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    # The interpreter in a private mount namespace where the user can read it (its libpython too, which
    # its RPATH names under /root), and a fresh venv from it
    prefix = Path(sys.base_prefix)
    py = base / "python"
    py.mkdir()
    venv = writable / "venv"
    port = _free_port()
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(writable), "VAE_APP_RUNS": str(writable / "runs"),
           "VAE_APP_CACHE": str(writable / "cache"), "HF_HOME": str(writable / "hf"),
           "NUMBA_CACHE_DIR": str(writable / "numba"), "MPLCONFIGDIR": str(writable / "mpl"),
           "VAE_WARM_UMAP": "0", "LD_LIBRARY_PATH": f"{py}/lib",
           **{k: v for k, v in env_lines.items() if k not in ("PATH", "HOME", "HF_HOME")}}
    cmd = shlex.split(next(a for w, a in steps if w == "CMD").replace("[", "").replace("]", "").replace(",", " "))
    cmd = [c.strip('"') for c in cmd]
    cmd = [str(port) if c == "8501" else ("127.0.0.1" if c == "0.0.0.0" else c) for c in cmd]
    pins = [a for w, a in steps if w == "RUN" and "pip install" in a]
    script = [f"mount --bind {shlex.quote(str(prefix))} {shlex.quote(str(py))}",
              shlex.join(_as_user(["env", "-i", *[f"{k}={v}" for k, v in env.items()],
                                   f"{py}/bin/python3", "-m", "venv", "--system-site-packages", str(venv)]))]
    if sys.prefix != sys.base_prefix:  # the tests run in a virtualenv (run.sh's .venv), which holds the packages
        outer = base / "env"
        outer.mkdir()
        site = Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
        add = f"import site; site.addsitedir({str(outer / site)!r})"
        pth = f"echo {shlex.quote(add)} > {venv / site / 'outer.pth'}"
        script += [f"mount --bind {shlex.quote(sys.prefix)} {shlex.quote(str(outer))}",
                   shlex.join(_as_user(["sh", "-c", pth]))]  # addsitedir: its .pth files count too
    for line in pins:  # the Dockerfile's pip installs, offline: every pin must already be what is installed
        args = shlex.split(line.split("pip install", 1)[1])
        args = [a for i, a in enumerate(args) if a != "--index-url" and (i == 0 or args[i - 1] != "--index-url")]
        script.append(f"cd {shlex.quote(str(app))} && " + shlex.join(_as_user(
            ["env", "-i", *[f"{k}={v}" for k, v in env.items()], f"{venv}/bin/python", "-m", "pip", "install",
             "--no-index", "--no-deps", "--disable-pip-version-check", "-q", *args])))
    script.append(f"cd {shlex.quote(str(app))} && exec " + shlex.join(_as_user(
        ["env", "-i", *[f"{k}={v}" for k, v in env.items()], f"{venv}/bin/python", "-m", *cmd])))
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (closed below, after the process)
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-ec", "\n".join(script)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + seconds(180)
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=4) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the app did not start as in the container:\n"
                            + (tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        _browse_and_train(url)
        deadline = time.monotonic() + seconds(120)
        while not list((writable / "runs").glob("*/*/metrics.jsonl")) and time.monotonic() < deadline:
            time.sleep(1)
        assert list((writable / "runs").glob("*/*/metrics.jsonl")), "the training wrote no run to the writable folder"
        assert not (app / "runs").exists(), "the app wrote into its read-only code folder"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert "Traceback" not in text and "Permission denied" not in text, text[-3000:]


def _browse_and_train(url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--headless", "--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("h1:has-text('VAE Explorer')", timeout=ms(120))
            assert page.locator('[data-testid="stException"]').count() == 0
            page.locator('[data-testid="stSidebarNav"] a', has_text="Training monitor").first.click()
            page.get_by_role("button", name="Start training").click(timeout=ms(120))
            try:
                page.wait_for_selector("h3:has-text('Runs')", timeout=ms(120))
            except Exception as e:  # noqa: BLE001 - report what the page says instead
                alerts = page.locator('[data-testid="stAlert"], [data-testid="stException"]').all_inner_texts()
                page.screenshot(path="/tmp/vae-deploy-failure.png", full_page=True)
                raise AssertionError(f"no run appeared after Start training: {alerts}") from e
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()

"""The whole app in a real browser: `streamlit run app.py` plus headless Chromium through Playwright.

Every page is opened by two sessions at once, one at 1400 px from the sidebar navigation and one at 800 px by its
address, left to settle, checked for Streamlit exception boxes, its title, cut or overflowing controls and (at
800 px) a collapsed sidebar, and screenshotted to tests/screenshots/<page>.png and <page>_800.png (the 1400 px
ones also to docs/screenshots/ with SAVE_DOC_SCREENSHOTS=1).
Skipped when /usr/bin/chromium or Playwright is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from budget import ms, seconds

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "tests" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"
READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'
BUSY = '[data-testid="stStatusWidget"], [data-testid="stSpinner"]'
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _page_titles() -> dict[str, str]:
    """Navigation label -> the st.title each page shows, read from app.py's PAGES and the page files."""
    app = (ROOT / "app.py").read_text()
    titles = {"Home": "VAE Explorer"}
    for path, label in re.findall(r'\(\s*"(pages/[^"]+\.py)"\s*,\s*"([^"]+)"', app):
        page = ROOT / path
        if page.is_file():
            found = re.search(r'st\.title\(\s*"([^"]+)"', page.read_text())
            titles[label] = found.group(1) if found else label
    return titles


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _zoo(tmp: Path) -> Path:
    """The bundled checkpoints when there are any (the app as shipped), else seeded stand-in models."""
    from vaecore.hub import CHECKPOINTS_DIR

    bundled = [c for c in CHECKPOINTS_DIR.glob("*/config.json") if (c.parent / "model.safetensors").is_file()]
    if bundled and not os.environ.get("VAE_TEST_QUICK_MODELS"):
        return CHECKPOINTS_DIR
    import torch

    import vaecore.models.tvae  # noqa: F401  (registers the tvae and vae presets)
    from vaecore import build_model, model_config

    for seed, preset in enumerate(("sigma-vae", "tvae", "vae")):
        torch.manual_seed(seed)
        build_model(model_config(preset, input_shape=(1, 28, 28), dataset="mnist").to_dict()).save_pretrained(
            tmp / preset)
    return tmp


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Streamlit server on a free port, stopped (by its own pid) afterwards."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    tmp = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = {**os.environ, "VAE_CHECKPOINTS": str(_zoo(tmp / "zoo")), "VAE_APP_RUNS": str(tmp / "runs"),
           "VAE_TEST_THREADS": os.environ.get("VAE_TEST_THREADS", "2")}
    log = open(tmp / "server.log", "w")  # noqa: SIM115  (closed below, after the process)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + seconds(60)
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start: {(tmp / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _settle(page, timeout_s: float = 90.0) -> None:
    """Wait until the script has finished and nothing shows 'running' (bounded)."""
    page.wait_for_selector(READY, timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        busy = page.locator(BUSY).count() > 0 or page.locator(READY).count() == 0
        quiet = 0 if busy else quiet + 1
        time.sleep(0.25)


def _screenshot(page, name: str, width: int = 1400) -> Path:
    """A full-length screenshot (Streamlit scrolls inside stMain, so the viewport is grown to fit)."""
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": width, "height": max(900, min(int(height) + 40, 5000))})
    time.sleep(0.8)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 900})
    if os.environ.get("SAVE_DOC_SCREENSHOTS") == "1" and width == 1400:
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, DOC_SHOTS / path.name)
    return path


def _box_selects_images(page) -> list[str]:
    """Drag a box over the middle of the latent map; the page should list the selected images."""
    if page.locator(".js-plotly-plot .nsewdrag").count() == 0:
        return ["Latent map: no plot area to select on"]
    _box(page, 0.3, 0.3, 0.7, 0.7)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector("h3:has-text('Selection:')", timeout=ms(60))
    except PlaywrightTimeout:
        return ["Latent map: a box selection showed no selected images within 60 s"]
    _settle(page)
    _screenshot(page, "latent_map_selection")
    return []


def _slug(url: str) -> str:
    """'http://host:port/Latent_map?sid=…' -> 'latent_map'; the root page is 'home'."""
    from urllib.parse import urlparse

    path = urlparse(url).path.strip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_") or "home"


CLIPPED_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const out = [];
  const skip = '.js-plotly-plot, [data-testid="stDataFrame"], [data-testid="stSlider"], ' +
               '[data-testid="stMultiSelectTagsContainer"], [data-testid="stPopoverBody"]';
  for (const e of main.querySelectorAll('button, [data-baseweb="select"], input, [data-testid="stWidgetLabel"]')) {
    if (e.closest(skip)) continue;
    const style = getComputedStyle(e);
    if (style.visibility === 'hidden' || style.opacity === '0') continue;
    if (['range', 'hidden', 'file'].includes(e.type)) continue;
    const r = e.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const box = (e.closest('[data-testid="stColumn"]') || main).getBoundingClientRect();
    const text = (e.innerText || e.value || e.getAttribute('aria-label') || '').trim().slice(0, 40);
    if (r.right > box.right + 1) {
      out.push(`${text || e.tagName} sticks out of its column by ${Math.round(r.right - box.right)} px`);
    }
    for (const t of e.querySelectorAll('[data-testid="stMarkdownContainer"], p, span, div')) {
      const clip = getComputedStyle(t);
      if (t.innerText.trim() && t.scrollWidth > t.clientWidth + 1
          && (clip.textOverflow === 'ellipsis' || clip.overflowX === 'hidden')) {
        out.push(`${t.innerText.trim().slice(0, 40)} is cut (${t.clientWidth} of ${t.scrollWidth} px shown)`);
      }
    }
  }
  return [...new Set(out)];
}"""


def _check_page(page, label: str, width: int) -> list[str]:
    """No exception box, the page's heading, and (at any width) no control whose label is cut or that sticks out
    of its column; at 800 px the sidebar is collapsed."""
    problems = []
    title = _page_titles().get(label, label)
    errors = page.locator('[data-testid="stException"]')
    if errors.count():
        problems.append(f"{label} at {width} px: {errors.first.inner_text()[:500]}")
    if page.locator("h1", has_text=title).count() == 0:
        problems.append(f"{label} at {width} px: no heading {title!r}")
    if width <= 900 and page.locator('[data-testid="stSidebar"]').get_attribute("data-collapsed") != "true":
        problems.append(f"{label} at {width} px: the sidebar is open")
    problems += [f"{label} at {width} px: {p}" for p in page.evaluate(CLIPPED_JS)]
    return problems


@pytest.mark.timeout(seconds(600))
def test_every_page_at_1400_and_800_px_in_two_sessions_at_once(server: str) -> None:
    """Two browser sessions at once: one at 1400 px that opens every page from the sidebar navigation, one at 800 px
    that opens the same page by its address (its sidebar starts collapsed). Both load each page together; each is
    checked (`_check_page`) and screenshotted (<page>.png at 1400 px, <page>_800.png at 800 px)."""
    from playwright.sync_api import sync_playwright

    titles = _page_titles()
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            wide = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            narrow = browser.new_context(viewport={"width": 800, "height": 900}).new_page()
            wide.goto(server)
            narrow.goto(server)
            _settle(wide)
            _settle(narrow)
            nav = wide.locator('[data-testid="stSidebarNav"] a')
            labels = [nav.nth(i).inner_text().strip().splitlines()[-1].strip() for i in range(nav.count())]
            assert set(titles) <= set(labels), f"pages missing from the navigation: {set(titles) - set(labels)}"
            for i, label in enumerate(labels):
                if i > 0:
                    href = nav.nth(i).get_attribute("href")
                    nav.nth(i).click()
                    narrow.goto(href, wait_until="commit")  # both sessions load the page at the same time
                    for page in (wide, narrow):
                        page.wait_for_function("t => document.querySelector('h1') && "
                                               "document.querySelector('h1').innerText.includes(t)",
                                               arg=titles.get(label, label), timeout=ms(120))
                _settle(wide)
                _settle(narrow)
                name = _slug(wide.url)
                problems += _check_page(wide, label, 1400)
                problems += _check_page(narrow, label, 800)
                _screenshot(wide, name)
                _screenshot(narrow, f"{name}_800", width=800)
                if name == "latent_map":
                    problems += _box_selects_images(wide)
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def _open_page(page, server: str, label: str) -> None:
    """Open the home page, then a page from the sidebar navigation, and wait for its title."""
    page.goto(server)
    _settle(page)
    page.locator('[data-testid="stSidebarNav"] a', has_text=label).first.click()
    title = _page_titles().get(label, label)
    page.wait_for_function("t => document.querySelector('h1') && document.querySelector('h1').innerText.includes(t)",
                           arg=title, timeout=ms(90))
    _settle(page)


@contextlib.contextmanager
def _latent_map_page(server: str) -> Iterator[Any]:
    """A 1400 px Chromium page on the Latent map, its chart drawn; the browser closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _open_page(page, server, "Latent map")
            page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=ms(90))
            yield page
        finally:
            browser.close()


def _selection_heading(page) -> str:
    heading = page.locator("h3:has-text('Selection:')")
    return heading.first.inner_text() if heading.count() else ""


def _box(page, fx0: float, fy0: float, fx1: float, fy1: float) -> None:
    """Drag a box over the latent map between fractions of its plot area (boxes must not overlap: a drag
    that starts on an earlier box's outline moves or resizes that box instead)."""
    area = page.locator(".js-plotly-plot .nsewdrag").first
    area.scroll_into_view_if_needed()
    b = area.bounding_box()
    page.mouse.move(b["x"] + fx0 * b["width"], b["y"] + fy0 * b["height"])
    page.mouse.down()
    page.mouse.move(b["x"] + fx1 * b["width"], b["y"] + fy1 * b["height"], steps=8)
    page.mouse.up()


@pytest.mark.timeout(seconds(300))
def test_latent_map_two_box_selections_and_a_double_click_clear(server: str) -> None:
    with _latent_map_page(server) as page:
        headings = []
        for box in ((0.05, 0.05, 0.35, 0.35), (0.6, 0.6, 0.95, 0.95), (0.05, 0.6, 0.35, 0.95)):
            before = _selection_heading(page)
            _box(page, *box)
            page.wait_for_function(
                "prev => { const h = [...document.querySelectorAll('h3')].find(e => e.innerText.startsWith("
                "'Selection:')); return h && h.innerText !== prev; }", arg=before, timeout=ms(60))
            _settle(page)
            headings.append(_selection_heading(page))
        assert len(set(headings)) == 3, f"a box selection was ignored: {headings}"
        _screenshot(page, "latent_map_selection")
        plot = page.locator(".js-plotly-plot .nsewdrag").first
        plot.scroll_into_view_if_needed()
        area = plot.bounding_box()
        page.mouse.dblclick(area["x"] + area["width"] * 0.45, area["y"] + area["height"] * 0.48)
        page.wait_for_selector("text=No selection yet", timeout=ms(60))
        assert _selection_heading(page) == ""


@pytest.mark.timeout(seconds(400))
def test_first_training_from_the_page_defaults_learns_and_downloads(server: str, tmp_path: Path) -> None:
    import zipfile

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _open_page(page, server, "Training monitor")
            page.get_by_role("button", name="Start training").click()
            page.get_by_role("button", name=re.compile("Continue for")).wait_for(timeout=ms(300))
            _settle(page)
            picker = page.locator('[data-testid="stSelectbox"]', has_text="Run").locator("input").first
            assert "finished at step" in (picker.input_value() or picker.get_attribute("aria-label") or ""), \
                "the run picker does not say the run finished"
            alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
            assert not [a for a in alerts if "collapse" in a.lower() or "mean image" in a.lower()
                        or "failed" in a.lower()], alerts
            _screenshot(page, "training_monitor")
            with page.expect_download(timeout=ms(60)) as download:
                page.get_by_role("button", name="Download the run folder (zip)").click()
            saved = tmp_path / "run.zip"
            download.value.save_as(saved)
            names = zipfile.ZipFile(saved).namelist()
            assert any(n.endswith("model.safetensors") for n in names) and any(n.endswith("metrics.jsonl")
                                                                            for n in names)
        finally:
            browser.close()


@pytest.mark.timeout(seconds(200))
def test_home_cards_at_800_px_keep_whole_words_and_numbers(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 900})
            page.goto(server)
            _settle(page)
            lines = page.locator("p", has_text="MSE").all_inner_texts()
            assert lines and not [t for t in lines if "…" in t], lines
            assert page.locator('[data-testid="stMetricValue"]').count() == 0  # st.metric truncates to "9.…"
            page.screenshot(path=str(SHOTS / "home_800.png"), full_page=False)
        finally:
            browser.close()


@pytest.mark.timeout(seconds(300))
def test_nearest_neighbours_keep_the_selection_and_the_point(server: str) -> None:
    """'Nearest neighbours' after a box selection: the selection and the point panel stay, and the neighbours are
    those of the image in the panel."""
    with _latent_map_page(server) as page:
        _box(page, 0.3, 0.3, 0.7, 0.7)
        page.wait_for_selector("h3:has-text('Selection:')", timeout=ms(60))
        _settle(page)
        heading = _selection_heading(page)
        point = page.locator('[data-testid="stNumberInput"]', has_text="Image index").locator("input").first
        index = point.input_value()
        page.get_by_role("button", name="Nearest neighbours").click()
        page.wait_for_selector(f"text=Nearest to #{index}", timeout=ms(60))
        _settle(page)
        assert _selection_heading(page) == heading
        assert page.locator('[data-testid="stNumberInput"]', has_text="Image index").locator(
            "input").first.input_value() == index


# the most isolated plotted point (largest distance to its nearest neighbour in pixels, over every trace), with
# its page coordinates and the image index its customdata carries: a click there can only hit that point
_ISOLATED_POINT_JS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
  const pts = [];
  for (const t of gd._fullData) {
    if (!t.customdata || t.name === 'neighbours') continue;
    for (let k = 0; k < t.x.length; k++) {
      const px = xa._offset + xa.l2p(t.x[k]), py = ya._offset + ya.l2p(t.y[k]);
      if (px > xa._offset + 8 && px < xa._offset + xa._length - 8 && py > ya._offset + 8
          && py < ya._offset + ya._length - 8) pts.push([px, py, Number(t.customdata[k][0])]);
    }
  }
  let best = null, bestGap = -1;
  for (const p of pts) {
    let gap = Infinity;
    for (const q of pts) if (q !== p) gap = Math.min(gap, Math.hypot(p[0] - q[0], p[1] - q[1]));
    if (gap > bestGap) { bestGap = gap; best = p; }
  }
  return {x: r.left + best[0], y: r.top + best[1], index: best[2], gap: bestGap};
}"""


@pytest.mark.timeout(seconds(300))
def test_latent_map_click_mode_picks_the_clicked_point(server: str) -> None:
    """In the 'Click a point' mouse mode a single click on a 2-D map selects that image: the selection heading
    says one point and the Point panel shows its index."""
    with _latent_map_page(server) as page:
        page.get_by_text("Click a point", exact=True).first.click()
        page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                               " return gd && gd._fullLayout && gd._fullLayout.dragmode === 'pan'; }",
                               timeout=ms(60))
        _settle(page)
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        target = page.evaluate(_ISOLATED_POINT_JS)
        assert target["gap"] > 6, f"no point stands apart enough to click: {target}"
        page.mouse.move(target["x"] - 3, target["y"] - 3)
        page.mouse.move(target["x"], target["y"], steps=3)  # hover first, as a hand does
        time.sleep(0.3)
        page.mouse.click(target["x"], target["y"])
        page.wait_for_selector("h3:has-text('Selection: 1 point')", timeout=ms(60))
        _settle(page)
        point = page.locator('[data-testid="stNumberInput"]', has_text="Image index").locator("input").first
        assert int(point.input_value()) == int(target["index"])

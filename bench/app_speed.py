"""How fast the app feels, on the CPU: time to a rendered home page, slider moves, and the 10k UMAP map.

    python bench/app_speed.py [--model sigma-vae] [--threads 2] [--skip-browser] [--n 10000] [--while-training 2]
    python bench/app_speed.py --maps-only --n 2000   # the maps alone

Measures
  * app ready: `streamlit run app.py` start until the home page has rendered in headless Chromium
    (skipped without /usr/bin/chromium or Playwright), and AppTest's first run of each part-B page;
  * slider moves: the server work of one move of the interpolation t slider and of one latent
    traversal slider (latent arithmetic, decode, PNG encoding; target < 100 ms), median of 50, and
    with --while-training N the same while N trainings run through the app's job queue;
  * the latent map: encoding n MNIST test images, then UMAP of their latents in a fresh process (numba
    compilation included: what the first user pays; target < 30 s), then PCA, UMAP 3-D and t-SNE 2-D / 3-D
    of the same latents once each, warm (nothing cached); the Latent map page computing that
    map (its first UMAP in this process), and asking for the same map again (the app's cache: ~instant).
Prints a table and writes bench/out/app_speed.json. Say how loaded the machine was when you quote it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = Path("/usr/bin/chromium")
READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_ready_seconds(env: dict[str, str]) -> float | None:
    """Seconds from launching `streamlit run app.py` until Chromium shows the rendered home page."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not CHROMIUM.is_file():
        return None
    port = _free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.perf_counter() - t0 > 120:
                    return None
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                        args=["--headless", "--no-sandbox", "--disable-gpu",
                                              "--disable-background-networking"])
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("h1:has-text('VAE Explorer')", timeout=120_000)
            page.wait_for_selector(READY, timeout=120_000)
            elapsed = time.perf_counter() - t0
            browser.close()
        return elapsed
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def apptest_first_runs() -> dict[str, float]:
    """AppTest's first run of each part-B page (a fresh AppTest per page, shared process caches)."""
    from streamlit.testing.v1 import AppTest

    out = {}
    for page in ("2_Latent_map.py", "3_Interpolation.py", "6_Transformations.py"):
        at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=600)
        t0 = time.perf_counter()
        at.run()
        out[page] = time.perf_counter() - t0
        if at.exception:
            print(f"  {page}: {at.exception[0].value}", file=sys.stderr)
    return out


def slider_moves(model_name: str, repeats: int = 50) -> dict[str, float]:
    """Median milliseconds of the server work behind one t-slider move and one traversal-slider move."""
    import vaecore
    from explorer.widgets import image_png
    from vaecore.latent import interpolation as interp

    model = vaecore.load(model_name)
    x = vaecore.load_dataset("mnist", limit=1).x_test[:2]
    z = interp.encode_means(model, x).cpu()
    times_t, times_tr = [], []
    for i in range(repeats + 3):
        t = (i % 20) / 19
        t0 = time.perf_counter()
        image_png(interp.decode(model, interp.interpolate(z[0], z[1], t, "spherical"))[0], 196)
        t1 = time.perf_counter()
        image_png(interp.decode(model, interp.with_values(z[0], {i % model.latent_dim: 3 * t - 1.5}))[0], 196)
        t2 = time.perf_counter()
        if i >= 3:
            times_t.append(t1 - t0)
            times_tr.append(t2 - t1)
    return {"t_slider_ms": 1000 * statistics.median(times_t), "traversal_slider_ms": 1000 * statistics.median(times_tr)}


UMAP_CHILD = """
import json, sys, time, torch
torch.set_num_threads({threads})
sys.path.insert(0, {root!r})
import vaecore
from vaecore.latent import projection as proj
model = vaecore.load({model!r})
x = vaecore.load_dataset("mnist").x_test[:{n}]
t0 = time.perf_counter(); z = proj.encode_images(model, x); t1 = time.perf_counter()
coords = proj.project(z, "umap", 2); t2 = time.perf_counter()
coords = proj.project(z, "umap", 2); t3 = time.perf_counter()
warm = {{}}
for method, dim in {maps!r}:
    t = time.perf_counter(); proj.project(z, method, dim); warm[f"{{method}}_{{dim}}d_s"] = time.perf_counter() - t
print(json.dumps({{"encode_s": t1 - t0, "umap_first_s": t2 - t1, "umap_again_uncached_s": t3 - t2,
                  "points": int(coords.shape[0]), "warm": warm}}))
"""
MAPS = (("pca", 2), ("pca", 3), ("umap", 3), ("tsne", 2), ("tsne", 3))  # timed warm after the UMAP 2-D ones


def umap_fresh_process(model_name: str, n: int, threads: int, maps: tuple = MAPS) -> dict[str, float]:
    """Encode n test images and run UMAP twice in a new interpreter (the first run pays numba's compilation),
    then every other map of `maps` once, warm (imports and compilation done, nothing cached)."""
    code = UMAP_CHILD.format(threads=threads, root=str(ROOT), model=model_name, n=n, maps=list(maps))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def umap_page(model_name: str, n: int) -> dict[str, float]:
    """The Latent map page computing the UMAP map of n test images, then asked for the same map again."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "2_Latent_map.py"), default_timeout=600)
    at.session_state["vae_picker_source"] = "Bundled"
    at.session_state["vae_picker_bundled"] = model_name
    at.session_state["map_n"] = n
    at.session_state["map_method"] = "umap"
    at.run()
    t0 = time.perf_counter()
    at.button(key="map_compute").click().run()
    t1 = time.perf_counter()
    at.run()
    t2 = time.perf_counter()
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    points = sum(len(t) for t in _chart_xs(at))
    return {"page_first_s": t1 - t0, "page_cached_s": t2 - t1, "page_points": points}


def _chart_xs(at) -> list:
    import base64

    import numpy as np

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    xs = []
    for trace in spec["data"]:
        x = trace["x"]
        xs.append(np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]) if isinstance(x, dict) else x)
    return xs


def slider_moves_while_training(model_name: str, jobs: int, runs: Path) -> dict[str, float]:
    """`slider_moves` again while `jobs` trainings run through the app's own job queue (one torch
    thread each, as the server runs them): how responsive page work stays while jobs train."""
    from explorer.jobs import JobManager

    manager = JobManager(runs, max_running=jobs, max_per_session=1, threads=1)
    for i in range(jobs):
        manager.start(f"bench{i}session", "sigma-vae", {"data": "mnist", "epochs": 50, "checkpoint_every": 10_000})
    time.sleep(3)  # past the jobs' data loading, into their training steps
    try:
        assert len(manager.training()) == jobs, "the jobs did not start"
        moves = slider_moves(model_name)
    finally:
        manager.stop_all()
    return {f"{k}_while_{jobs}_jobs": v for k, v in moves.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sigma-vae", help="bundled checkpoint name or model folder")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)")
    parser.add_argument("--n", type=int, default=10_000, help="test images on the latent map")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--maps-only", action="store_true", help="only the fresh-process map timings")
    parser.add_argument("--while-training", type=int, default=0, metavar="N",
                        help="also time the slider moves while N app training jobs run")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    env = {**os.environ, "VAE_APP_RUNS": tempfile.mkdtemp(prefix="bench_runs_")}
    os.environ["VAE_APP_RUNS"] = env["VAE_APP_RUNS"]
    load = os.getloadavg()
    results: dict[str, object] = {"model": args.model, "threads": args.threads, "cpus": os.cpu_count(),
                                  "load_avg_before": [round(v, 2) for v in load]}
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"(1 / 5 / 15 min); torch threads {args.threads}; model {args.model}")
    if args.maps_only:
        fresh = umap_fresh_process(args.model, args.n, args.threads)
        print(json.dumps(fresh, indent=1))
        return
    if not args.skip_browser:
        ready = app_ready_seconds(env)
        results["app_ready_browser_s"] = ready
        print(f"app ready (streamlit run -> home rendered in Chromium): "
              f"{'skipped' if ready is None else f'{ready:.1f} s'}")
    results["apptest_first_run_s"] = first = apptest_first_runs()
    for page, s in first.items():
        print(f"AppTest first run {page:<24} {s:6.2f} s")
    results.update(moves := slider_moves(args.model))
    print(f"t slider move (server work):         {moves['t_slider_ms']:6.1f} ms  (target < 100 ms)")
    print(f"traversal slider move (server work): {moves['traversal_slider_ms']:6.1f} ms  (target < 100 ms)")
    if args.while_training:
        busy = slider_moves_while_training(args.model, args.while_training, Path(env["VAE_APP_RUNS"]))
        results.update(busy)
        for k, v in busy.items():
            print(f"{k.replace('_', ' ')}: {v:6.1f} ms  (target < 100 ms)")
    results["umap_fresh_process"] = fresh = umap_fresh_process(args.model, args.n, args.threads)
    print(f"encode {fresh['points']:,} test images:        {fresh['encode_s']:6.1f} s")
    print(f"UMAP first time (fresh process):     {fresh['umap_first_s']:6.1f} s  (target < 30 s)")
    print(f"UMAP again, same process, no cache:  {fresh['umap_again_uncached_s']:6.1f} s")
    for name, sec in fresh["warm"].items():
        print(f"{name.removesuffix('_s').replace('_', ' '):<10} warm, no cache:       {sec:6.1f} s")
    results["umap_page"] = page = umap_page(args.model, args.n)
    print(f"Latent map page, first UMAP map of {page['page_points']:,} in this process "
          f"(encode + numba compilation + UMAP): {page['page_first_s']:6.1f} s  (target < 30 s)")
    print(f"Latent map page, same map again (cache):  {page['page_cached_s']:6.2f} s  (target ~instant)")
    results["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
    print(f"load average after: {results['load_avg_after'][0]:.1f}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "app_speed.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'app_speed.json'}")


if __name__ == "__main__":
    main()

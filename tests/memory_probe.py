"""Peak memory of hostile requests through the app's real paths: `python tests/memory_probe.py WORKDIR`.

Each hostile model folder (tests/hostile.py) is picked in the app's model picker (the sidebar code of
explorer.state, run by AppTest in this process) as a Folder, some as a Hub repo (from an offline hub cache)
and as a shared `?model=` link; each hostile upload goes through `explorer.uploads.parse_uploads`, the parser
behind the upload panel. Before each request the kernel's peak-RSS counter is reset (/proc/self/clear_refs),
after it the peak it reached above the RSS before is recorded, in MiB, with the size of the request's input (the
upload's bytes, the model folder's files) and of what it accepted (the decoded images and labels). A valid model and
the largest valid upload are measured the same way. Prints one JSON line: {"cases": {name: {"peak_mib", "input_mib",
"accepted_mib", "refused", "traceback", "message"}}}, or {"skipped": why} where the peak counter cannot be reset.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PICKER = """
from explorer.state import render_model_picker, selected_model
render_model_picker()
spec, model = selected_model()
if model is not None:
    import streamlit as st
    st.write("loaded", model.config.preset)
"""


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") <= _status_kib("VmRSS") + 1024


Outcome = tuple[bool, bool, str, int]  # refused, traceback, message, bytes of what the request accepted


def _measure(request: Callable[[], Outcome], input_bytes: int) -> dict:
    gc.collect()
    _reset_peak()
    before = _status_kib("VmRSS")
    refused, traceback, message, accepted = request()
    peak = _status_kib("VmHWM") - before
    return {"peak_mib": round(peak / 1024, 1), "input_mib": round(input_bytes / 2**20, 3),
            "accepted_mib": round(accepted / 2**20, 3), "refused": refused, "traceback": traceback,
            "message": message[:300]}


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _upload(name: str, data: bytes) -> Callable[[], Outcome]:
    def run() -> Outcome:
        from explorer.uploads import parse_uploads

        try:
            got = parse_uploads([(name, data)], (1, 28, 28))
        except ValueError as e:
            return True, False, str(e), 0
        except Exception as e:  # noqa: BLE001 - reported as a traceback
            return False, True, f"{type(e).__name__}: {e}", 0
        accepted = sum(t.numel() * t.element_size() for t in (got.images, got.labels) if t is not None)
        return False, False, "", accepted
    return run


def _pick(source: str, value: str, link: bool = False) -> Callable[[], Outcome]:
    def run() -> Outcome:
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_string(PICKER, default_timeout=120)
        if link:
            at.query_params["model"] = value
            at.run()
        else:
            at.run()
            at.sidebar.segmented_control(key="vae_picker_source").set_value(source).run()
            key = "vae_picker_folder" if source == "Folder" else "vae_picker_repo"
            at.sidebar.text_input(key=key).input(value).run()
        errors = [e.value for e in at.sidebar.error] + [e.value for e in at.error]
        if at.exception:
            return False, True, str([e.value for e in at.exception])[:300], 0
        return bool(errors), False, (errors or [""])[0], 0
    return run


def main() -> None:
    work = Path(sys.argv[1])
    if not _reset_peak():
        print(json.dumps({"skipped": "the peak-RSS counter cannot be reset here (/proc/self/clear_refs)"}))
        return
    (work / "no-bundled").mkdir(parents=True, exist_ok=True)  # the picker starts on an empty Folder field
    os.environ.update(VAE_APP_RUNS=str(work / "runs"), VAE_APP_CACHE=str(work / "cache"),
                      VAE_CHECKPOINTS=str(work / "no-bundled"), HF_HUB_CACHE=str(work / "hub"), HF_HUB_OFFLINE="1")
    import torch

    torch.set_num_threads(1)
    import hostile
    from test_hub import _populate_hub_cache

    folders = hostile.model_folders(work / "models")
    hub = {"someone/valid": folders["valid"], "someone/shape-3000": folders["input_shape [1, 3000, 3000]"],
           "someone/deep": folders["config 100,000 deep"], "someone/nan": folders["weights NaN"]}
    for repo, folder in hub.items():
        _populate_hub_cache(work / "hub", repo, folder)
    _pick("Folder", str(folders["valid"]))()  # warm-up: imports and Streamlit's first run are not a request

    cases: dict[str, dict] = {}
    for name, folder in folders.items():
        cases[f"{'valid model' if name == 'valid' else name} (Folder)"] = _measure(_pick("Folder", str(folder)),
                                                                                   _folder_bytes(folder))
    for repo, folder in hub.items():
        cases[f"{'valid model' if repo == 'someone/valid' else repo} (Hub)"] = _measure(_pick("Hub", repo),
                                                                                        _folder_bytes(folder))
    for name in ("input_shape [1, 100000, 100000]", "model_type dict", "config 100,000 deep"):
        cases[f"{name} (?model= link)"] = _measure(_pick("Folder", str(folders[name]), link=True),
                                                   _folder_bytes(folders[name]))
    for name, (file_name, data) in hostile.uploads().items():
        cases[f"{name} (upload)"] = _measure(_upload(file_name, data), len(data))
    print(json.dumps({"cases": cases}))


if __name__ == "__main__":
    main()

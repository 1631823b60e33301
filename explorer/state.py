"""Session state: the browser session id, the sidebar model picker shared by every page, model choices."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from explorer.caches import load_model, try_load_model
from explorer.catalog import local_folder, model_label, read_json_file, runs_root
from explorer.jobs import list_runs
from explorer.widgets import model_summary_markdown
from vaecore import ModelLoadError, PretrainedModel
from vaecore.files import CONFIG, WEIGHTS
from vaecore.hub import bundled_names

SESSION_PARAM = "sid"
MODEL_PARAM = "model"
_SID = re.compile(r"^[A-Za-z0-9_-]{6,40}$")
_SPEC_KEY = "vae_model_spec"
_FAILED_KEY = "vae_model_failed"
_PICKER_RENDERED = "_vae_picker_rendered"
SOURCES = ("Bundled", "Runs", "Folder", "Hub")


def session_id() -> str:
    """This browser session's id: kept in session state and in the URL (?sid=) so a reload finds its runs."""
    sid = st.session_state.get("vae_session_id")
    if not sid:
        given = st.query_params.get(SESSION_PARAM)
        sid = given if given and _SID.match(given) else secrets.token_urlsafe(9).replace("-", "a").replace("_", "b")
        st.session_state["vae_session_id"] = sid
    if st.query_params.get(SESSION_PARAM) != sid:
        st.query_params[SESSION_PARAM] = sid
    return sid


def session_runs() -> list[Path]:
    """This session's run folders that hold a loadable model, newest first."""
    return list(session_run_titles())


def session_run_titles() -> dict[Path, str]:
    """This session's run folders that hold a loadable model, newest first, with their names (`RunInfo.title`)."""
    return {r.folder: r.title for r in list_runs(runs_root(), session_id()) if (r.folder / WEIGHTS).is_file()}


_PICK = "vae_pick"
_FIELDS = {"Bundled": "bundled", "Runs": "run", "Folder": "folder", "Hub": "repo"}


def _pick_state() -> dict[str, str]:
    """The picker's choices in plain session state (widget state is dropped on some page switches);
    a new session starts from the URL's ?model= so a reload or a shared link keeps the model."""
    if _PICK not in st.session_state:
        state: dict[str, str] = {}
        spec = st.query_params.get(MODEL_PARAM)
        if spec:
            if spec in bundled_names():
                state = {"source": "Bundled", "bundled": spec}
            elif local_folder(spec) is not None:
                runs = {str(f) for f in session_runs()}
                state = {"source": "Runs", "run": spec} if spec in runs else {"source": "Folder", "folder": spec}
            else:
                state = {"source": "Hub", "repo": spec}
        st.session_state[_PICK] = state
    return st.session_state[_PICK]


def set_pick(source: str, value: str) -> None:
    """Select a model in the sidebar picker; safe to use as a widget callback (before the picker is drawn)."""
    state = _pick_state()
    state["source"], state[_FIELDS[source]] = source, value
    st.session_state["vae_picker_source"] = source
    st.session_state[f"vae_picker_{_FIELDS[source]}"] = value


def _initial(key: str, name: str, value: Any, options: Sequence[Any] | None = None) -> dict[str, Any]:
    """`{name: value}` for a picker widget without state yet, {} once it has some (no double default).

    A remembered choice that is no longer among `options` (a deleted run) is dropped first.
    """
    if options is not None and key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    return {} if key in st.session_state else {name: value}


def _choose(sb: Any, label: str, options: list[str], key: str, wanted: str | None, **kwargs: Any) -> str:
    index = options.index(wanted) if wanted in options else 0
    return sb.selectbox(label, options, key=key, **_initial(key, "index", index, options), **kwargs)


def _render_picker() -> str | None:
    sb = st.sidebar
    sb.subheader("Model")
    names = bundled_names()
    state = _pick_state()
    default_source = state.get("source") or (SOURCES[0] if names else SOURCES[2])
    source = sb.segmented_control(
        "Source", SOURCES, key="vae_picker_source", **_initial("vae_picker_source", "default", default_source),
        help=f"A bundled checkpoint, one of your training runs, a local folder ({CONFIG} + {WEIGHTS}) "
             "or a Hugging Face Hub repo id.") or default_source
    spec: str | None = None
    if source == "Bundled":
        if names:
            spec = _choose(sb, "Bundled model", names, "vae_picker_bundled", state.get("bundled") or "sigma-vae")
        else:
            sb.info("No bundled checkpoints yet (checkpoints/ is empty). Train one on the Training monitor "
                    "page, or pick a folder.")
    elif source == "Runs":
        labels = {str(folder): title for folder, title in session_run_titles().items()}
        if labels:
            spec = _choose(sb, "Run", list(labels), "vae_picker_run", state.get("run"), format_func=labels.get)
        else:
            sb.info("No runs in this session yet: start one on the Training monitor page.")
    elif source == "Folder":
        spec = sb.text_input("Model folder", key="vae_picker_folder",
                             **_initial("vae_picker_folder", "value", state.get("folder", "")),
                             placeholder="runs/my-run or /path/to/model").strip() or None
    elif source == "Hub":
        spec = sb.text_input("Hub repo id", key="vae_picker_repo",
                             **_initial("vae_picker_repo", "value", state.get("repo", "")),
                             placeholder="owner/name").strip() or None
        sb.caption("Needs the network once; works offline afterwards from the hub cache.")
    state["source"] = source
    st.session_state[_FAILED_KEY] = None
    if spec:
        state[_FIELDS[source]] = spec
        model = None
        if source == "Folder" and not Path(spec).expanduser().is_dir():
            sb.error(f"No folder **{spec}** on the server. A model folder holds {CONFIG} and "
                     f"{WEIGHTS} (a training run's folder, for example).")
        else:
            model = try_load_model(spec, sb)
        if model is not None:
            sb.caption(model_summary_markdown(model))
        else:
            st.session_state[_FAILED_KEY] = spec
            spec = None
    st.session_state[_SPEC_KEY] = spec
    if spec and st.query_params.get(MODEL_PARAM) != spec:
        st.query_params[MODEL_PARAM] = spec
    return spec


def render_model_picker() -> str | None:
    """Draw the picker in the sidebar (app.py calls this once per run, before the page)."""
    spec = _render_picker()
    st.session_state[_PICKER_RENDERED] = True
    return spec


def end_of_run() -> None:
    """Mark the picker as not yet drawn for the next run (app.py calls this after the page)."""
    st.session_state[_PICKER_RENDERED] = False


def model_picker() -> str | None:
    """The picked model spec; draws the picker when a page runs on its own (e.g. in tests)."""
    if st.session_state.get(_PICKER_RENDERED):
        return st.session_state.get(_SPEC_KEY)
    return _render_picker()


def selected_model() -> tuple[str, PretrainedModel] | tuple[None, None]:
    """(spec, model) of the sidebar pick, or (None, None) with an explanation on the page."""
    spec = model_picker()
    if not spec:
        failed = st.session_state.get(_FAILED_KEY)
        if failed:
            st.warning(f"The model picked in the sidebar, **{model_label(failed)}**, could not be loaded (the "
                       "sidebar says why). Pick another one there.")
        else:
            st.info("Pick a model in the sidebar.")
        return None, None
    model = try_load_model(spec)
    return (spec, model) if model is not None else (None, None)


def require_model() -> tuple[str, PretrainedModel]:
    """(spec, model) of the sidebar pick; stops the page (with its explanation) when there is none."""
    spec, model = selected_model()
    if model is None:
        st.stop()
    return spec, model


def model_choices(include_runs: bool = True) -> dict[str, str]:
    """Every model the comparison pages can offer: spec -> label (bundled, this session's runs, the pick)."""
    choices = {name: name for name in bundled_names()}
    if include_runs:
        for folder, title in session_run_titles().items():
            choices[str(folder)] = f"run: {title}"
    picked = st.session_state.get(_SPEC_KEY)
    if picked and picked not in choices:
        choices[picked] = model_label(picked)
    return choices


def pick_run(folder: Path) -> None:
    """Widget callback: make a run folder the sidebar's model."""
    set_pick("Runs", str(folder))


def model_type_of(spec: str) -> str:
    """A model's `model_type` from its config.json, without loading it ('vae' when unknown)."""
    folder = local_folder(spec)
    if folder is not None:
        return str(read_json_file(folder / CONFIG).get("model_type", "vae"))
    try:
        return str(getattr(load_model(spec).config, "model_type", "vae"))
    except ModelLoadError:
        return "vae"


def models_by_type() -> dict[str, dict[str, str]]:
    """Offered models (bundled, runs, the sidebar pick) split by model_type: type -> {spec: label}."""
    out: dict[str, dict[str, str]] = {}
    for spec, label in model_choices().items():
        out.setdefault(model_type_of(spec), {})[spec] = label
    return out

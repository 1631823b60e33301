"""Training monitor: start, pause/stop and resume a training in the background and watch it live."""

from __future__ import annotations

import hashlib

import streamlit as st

from explorer import caches, downloads, figures, multiprocess, settings_form, state, sweeps, tables, widgets
from explorer.jobs import SWEEPS, JobError, RunInfo, progress
from vaecore.cli_flags import train_command
from vaecore.evaluation import rate_distortion
from vaecore.evaluation.protocol import IWAE_K, N_TEST
from vaecore.files import APP_RUN, EVAL, METRICS, SAMPLES, WEIGHTS
from vaecore.presets import PRESETS

DATASETS = {"digits": "digits (sklearn 8×8, fastest)", "mnist": "MNIST (bundled)",
            "fashion-mnist": "Fashion-MNIST (needs a folder)",
            "imagefolder": "your image folder (PNG, JPEG, WebP, BMP)",
            "cifar10": "CIFAR-10 (binary version, needs its folder)", "svhn": "SVHN (needs its .mat files' folder)",
            "celeba": "CelebA (needs its folder)", "dsprites-procedural": "dSprites (generated here, ~3 GB cache)"}
DEFAULT_DATA = "digits"
# this page's starting values, for runs that finish in about a minute on the digits (the settings themselves, with
# their labels, help and ranges, are the config fields': explorer/settings_form.py)
APP_DEFAULTS = {"epochs": 20, "batch_size": 32, "lr": 2e-3, "log_every": 10, "checkpoint_every": 100}
APP_VAL_LIMIT = 1000
SWEEP_EXAMPLES = {"beta": "0.25, 1, 4", "latent_dim": "2, 8, 32", "likelihood": "bernoulli, gaussian",
                  "sigma": "fixed, learned, optimal"}
NEEDS_FOLDER = ("fashion-mnist", "imagefolder", "cifar10", "svhn", "celeba")
FOLDER_HINT = {"fashion-mnist": "folder with the four IDX files", "imagefolder": "folder of images (or a file list)",
               "cifar10": "the extracted cifar-10-batches-bin folder",
               "svhn": "folder with train_32x32.mat, test_32x32.mat",
               "celeba": "folder with img_align_celeba/ and list_eval_partition.txt"}
STATUS_ICON = {"starting": ":material/hourglass_top:", "running": ":green[:material/play_circle:]",
               "stopping": ":material/pause_circle:", "finished": ":green[:material/check_circle:]",
               "stopped": ":material/pause_circle:", "diverged": ":orange[:material/warning:]",
               "error": ":red[:material/error:]", "interrupted": ":material/pause_circle:",
               "queued": ":material/schedule:", "cancelled": ":material/cancel:"}

st.title("Training monitor")
st.caption("Trainings run in the background on the server: they keep going when you reload the page or "
           "switch pages, and belong to this browser session (the `sid` in the address bar).")
sid = state.session_id()
state.model_picker()
manager = caches.job_manager()


def settings_panel() -> None:
    """The new-run settings and the Start button; the settings' widgets come from the config fields."""
    with st.expander("New run", expanded=not manager.runs(sid)):
        preset = st.selectbox("Preset", list(PRESETS), index=list(PRESETS).index("sigma-vae"), key="tm_preset",
                              persist_state="session")
        st.caption(f"**{preset}**: {PRESETS[preset].description}"
                   + (f" · {PRESETS[preset].source}" if PRESETS[preset].source else ""))
        overrides = settings_form.model_inputs(st.columns(3), preset)
        train = settings_form.train_inputs(st.columns(3), "main", APP_DEFAULTS)
        c1, c2, c3 = st.columns(3)
        data = c1.selectbox("Dataset", list(DATASETS), index=list(DATASETS).index(DEFAULT_DATA),
                            format_func=DATASETS.get, key="tm_data", persist_state="session")
        data_dir = c2.text_input("Data folder", key="tm_data_dir", persist_state="session",
                                 disabled=data not in NEEDS_FOLDER,
                                 placeholder=FOLDER_HINT.get(data, ""))
        train |= settings_form.train_inputs([c3], "data", APP_DEFAULTS)
        c1, c2, c3 = st.columns([2, 1.5, 4], vertical_alignment="center")
        with c3.popover("Sweep one setting", icon=":material/tune:"):
            sweep_setting = st.selectbox("Vary", list(SWEEPS), format_func=SWEEPS.get, key="tm_sweep_setting",
                                         help="One run per value, the other settings as above; they train one after "
                                              "the other and are compared on one chart (the rate–distortion plane).")
            sweep_text = st.text_input("Values (comma-separated)", value=SWEEP_EXAMPLES[sweep_setting],
                                       key=f"tm_sweep_values_{sweep_setting}")
            sweep_clicked = st.button("Queue the sweep", key="tm_sweep", icon=":material/queue:")
        with c2.popover("Advanced"):
            train |= settings_form.train_inputs([st], "advanced", APP_DEFAULTS)
            gpus = multiprocess.gpu_count()
            processes = st.number_input(
                f"GPUs (processes, DistributedDataParallel; this server has {gpus})", 1, max(1, gpus), value=1,
                key="tm_processes", disabled=gpus < 2,
                help="Several GPUs train one run with torchrun, one process per GPU, each on its shard of every "
                     "batch; the run then resumes only with as many.")
        start = c1.button("Start training", type="primary", icon=":material/play_arrow:", key="tm_start")
        if start or sweep_clicked:
            problem = tables.data_folder_problem(data, data_dir) if data in NEEDS_FOLDER else None
            if problem:
                st.error(f"**Data folder**: {problem}")
                return
            train |= {"data": data, "data_dir": (data_dir.strip() or None) if data in NEEDS_FOLDER else None,
                      "val_limit": APP_VAL_LIMIT}
            try:
                if start:
                    st.session_state["tm_selected_run"] = manager.start(sid, preset, train, processes=int(processes),
                                                                        **overrides).name
                else:
                    folders = manager.start_sweep(sid, preset, train, sweep_setting,
                                                  sweeps.parse_values(sweep_setting, sweep_text), **overrides)
                    st.session_state["tm_selected_run"] = folders[0].name
            except (JobError, ValueError, KeyError, OSError) as e:  # OSError: a read-only or full runs folder
                st.error(tables.page_message(str(e)))
            else:
                st.rerun()


def _do(action: str, run: str, more_epochs: int = 0) -> None:
    """A control's callback: it runs before the page, so a click during a live refresh is never lost; a refusal is
    kept for the page to show."""
    st.session_state.pop("tm_error", None)
    try:
        if action == "stop":
            manager.stop(sid, run)
        elif action == "resume":
            manager.resume(sid, run, more_epochs)
        elif action == "delete":
            manager.delete(sid, run)
            st.session_state.pop("tm_selected_run", None)
        elif action == "evaluate":
            manager.evaluate(sid, run)
        elif action == "stop-evaluation":
            manager.stop_evaluation(sid, run)
    except (JobError, ValueError, OSError) as e:
        st.session_state["tm_error"] = str(e)


def _rename(run: str) -> None:
    try:
        manager.rename(sid, run, st.session_state.get(f"tm_title_{run}", ""))
    except (JobError, OSError) as e:
        st.session_state["tm_error"] = str(e)


ACTIONS = {  # status -> the one control button: label, icon, action, help (one keyed button, updated in place)
    "queued": ("Take off the queue", ":material/cancel:", "stop", "Removes the run from the queue before it starts."),
    "starting": ("Pause / stop", ":material/pause:", "stop", None),
    "running": ("Pause / stop", ":material/pause:", "stop", None),
    "stopping": ("Stopping…", ":material/pause:", "stop", None),
    "stopped": ("Resume", ":material/play_arrow:", "resume", "Continues exactly where the run stopped."),
    "interrupted": ("Resume", ":material/play_arrow:", "resume", "Continues from the last checkpoint."),
}


def controls(info: RunInfo) -> None:
    """One button for the run's state (pause / resume / take off the queue), continue, explore, download, delete."""
    c1, c2, c3 = st.columns([1, 2, 2], vertical_alignment="center")
    label, icon, action, help_ = ACTIONS.get(info.status, (None, None, None, None))
    if label:
        c1.button(label, icon=icon, key="tm_action", type="primary" if action == "resume" else "secondary",
                  disabled=info.status == "stopping", on_click=_do, args=(action, info.name), help=help_)
    if info.running:
        return
    if info.status == "finished":
        more = c1.number_input("More epochs", 1, 500, value=2, key="tm_more")
        c2.button(f"Continue for {more} more epochs", icon=":material/fast_forward:", key="tm_continue",
                  on_click=_do, args=("resume", info.name, int(more)))
    explorable = (info.folder / WEIGHTS).is_file()
    if info.status in ("finished", "stopped", "interrupted", "diverged") and explorable:
        c3.button("Explore this model", icon=":material/travel_explore:", key="tm_explore",
                  on_click=state.pick_run, args=(info.folder,),
                  help="Makes this run the sidebar's model for the other pages.")
    try:
        archive = downloads.folder_zip(info.folder)
    except (OSError, ValueError) as e:
        c2.caption(f"No download: {e}")
    else:
        c2.download_button("Download the run folder (zip)", archive, file_name=f"{info.name}.zip",
                           mime="application/zip", key="tm_download", icon=":material/download:",
                           help=f"Checkpoint, model, config, {METRICS}, sample grids: everything the run wrote.")
    c3.button("Delete this run", icon=":material/delete:", key="tm_delete", on_click=_do, args=("delete", info.name),
              help="Removes the run and its folder (checkpoints, logs, samples).")


def evaluation_panel(info: RunInfo) -> None:
    """Evaluate the run with the zoo's protocol in the background (queued like training, with progress); once its
    eval.json is written the run ranks with the bundled models on the same test images."""
    job = manager.evaluation(sid, info.name)
    evaluated = (info.folder / EVAL).is_file()
    active = job is not None and job.status in ("queued", "starting", "running")
    if not active and (info.running or not (info.folder / WEIGHTS).is_file()):
        return

    @st.fragment(run_every=widgets.LIVE_REFRESH_S if active else None)
    def panel() -> None:
        now = manager.evaluation(sid, info.name)
        c1, c2 = st.columns([1, 4], vertical_alignment="center")
        if now is not None and now.status in ("queued", "starting", "running"):
            c1.button("Stop the evaluation", key="tm_eval_stop", on_click=_do, args=("stop-evaluation", info.name),
                      icon=":material/stop:")
            text = (f"queued (number {manager.queue_position(sid, info.name) or '?'})" if now.status == "queued"
                    else f"evaluating: {now.stage} {now.done_steps:,}/{now.total_steps:,}")
            c2.progress(now.fraction, text=text)
            return
        if active:  # it just ended: the page shows the new eval.json
            st.rerun(scope="app")
        c1.button("Evaluate again" if evaluated else "Evaluate this run", key="tm_evaluate", icon=":material/rule:",
                  on_click=_do, args=("evaluate", info.name),
                  help=f"The zoo's protocol: {N_TEST:,} test images, K = {IWAE_K} importance samples, FD of the prior "
                       f"and of a fitted GMM; writes the run's {EVAL}. Then it ranks with the bundled models on "
                       "the same test images (the home table, Likelihood comparison).")
        if now is not None and now.status in ("error", "cancelled"):
            c2.warning(f"The evaluation {now.status}: {tables.page_message(now.message)}")
        elif evaluated:
            c2.caption(f"Evaluated ({EVAL}): this run is in the zoo table on the home page and ranks on the Likelihood "
                       "comparison with the bundled models on the same test images.")

    panel()


def sweep_section(runs: list[RunInfo]) -> None:
    """Each sweep of the session on one chart: its finished runs on the rate–distortion plane, in value order."""
    found = sweeps.sweeps(runs)
    if not found:
        return
    st.subheader("Sweeps")
    if manager.pending(sid):
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.caption(f"{manager.pending(sid)} run(s) of the sweep wait for the one training now.")
        if c2.button("Cancel the rest", key="tm_sweep_cancel"):
            manager.cancel_sweep(sid)
            st.rerun()
    for sweep in found:
        st.markdown(f"**{sweep.runs[0].preset}: {sweep.label}** · {len(sweep.finished)} of {len(sweep.runs)} "
                    "finished")
        if len(sweep.finished) < 1:
            continue
        with st.spinner("Computing each run's rate and distortion…"):
            members = [(sweeps.value_of(r), sweeps.rate_distortion_point(r)) for r in sweep.finished]
        curve = [(v, p) for v, p in members if p is not None]
        if curve:
            iso = rd_iso(curve)
            st.plotly_chart(figures.rate_distortion_figure({}, {sweep.label: curve}, iso), key=f"tm_sweep_{sweep.id}",
                            config={"displaylogo": False})
            st.caption(f"Each run's rate (KL) and distortion (−log p(x|z)) on the first {sweeps.RD_IMAGES} test "
                       "images, computed by the engine; dotted lines: equal ELBO. Distortions compare only within one "
                       "likelihood family: " + ", ".join(sorted({p.family for _, p in curve})) + ".")
        st.dataframe(tables.display_rows([{"value": v, "rate R": None if p is None else round(p.rate, 2),
                                           "distortion D": None if p is None else round(p.distortion, 2),
                                           "ELBO": None if p is None else round(p.elbo, 2)} for v, p in members]),
                     hide_index=True)


def rd_iso(curve: list) -> list:
    rates = [p.rate for _, p in curve]
    span = max(rates) - min(rates) or 1.0
    return rate_distortion.iso_elbo_lines((max(0.0, min(rates) - 0.1 * span), max(rates) + 0.1 * span),
                                          points=[p for _, p in curve])


def name_and_command(info: RunInfo) -> None:
    """Rename the run; the `vaecore train` command that trains the same run from a terminal."""
    with st.expander("Name and command line", expanded=False):
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        c1.text_input("Name", value=info.title, key=f"tm_title_{info.name}", max_chars=80,
                      help="How the run is listed on every page (its folder keeps its name).")
        c2.button("Rename", key="tm_rename", on_click=_rename, args=(info.name,))
        settings = info.settings or {}
        if settings.get("preset") and settings.get("train"):
            out = f"runs/{info.name}"
            command, missing = train_command(settings["preset"], settings["train"], settings.get("overrides") or {},
                                             out=out)
            st.code(command, language="bash", wrap_lines=True)
            if missing:
                st.caption(f"Settings without a flag ({', '.join(missing)}): train from the run's own settings file "
                           f"instead: `python -m vaecore train --settings {info.folder / APP_RUN} --out {out}`.")


def live_view(info: RunInfo) -> None:
    """Status, progress, curves and images of one run; refreshes itself while the run trains."""
    was_running = info.running

    @st.fragment(run_every=widgets.LIVE_REFRESH_S if was_running else None)
    def view() -> None:
        now = manager.run(sid, info.name)
        if was_running and not now.running:
            st.rerun(scope="app")
        records = caches.read_records(now.folder)
        p = progress(records)
        st.markdown(f"{STATUS_ICON.get(now.status, '')} **{now.status}** · `{now.preset}` on `{now.data}`")
        if now.status == "queued":
            st.info(f"Waiting for a free training slot: number {now.queue_position or '?'} in the queue "
                    f"({manager.max_running} training at once on this server).")
        if now.status == "diverged":
            st.error(f"Training diverged. {tables.page_message(now.message)}")
        elif now.status == "error":
            st.error(f"Training failed: {tables.page_message(now.message)}")
        elif now.status == "interrupted":
            st.warning(now.message.capitalize() + ".")
        if now.status == "starting" and not records:
            st.progress(0.0, text="loading the data and building the model…")
        else:
            text = f"step {p['step']}" + (f" / {p['total_steps']}" if p["total_steps"] else "")
            if p["epoch"] is not None:
                text += f" · epoch {p['epoch']:.2f}"
            if p["images_per_s"]:
                text += f" · {p['images_per_s']:.0f} images/s"
            if now.running:
                text += (f" · {tables.format_seconds(p['eta_s'])} left" if p["eta_s"] is not None
                         else " · estimating the time left…")
            st.progress(p["fraction"], text=text)
        if not any(r.get("kind") == "step" for r in records):
            st.caption("Curves appear after the first logged steps.")
            return
        x_axis = st.session_state.get("tm_x", "step")
        overlay = [r for r in runs if r.name in (st.session_state.get("tm_overlay") or []) and r.name != now.name]
        curves = ({f"{now.title} (this run)": records}
                  | {r.title: caches.read_records(r.folder) for r in overlay}
                  if overlay else records)
        st.plotly_chart(figures.training_figure(curves, x=x_axis, smoothing=st.session_state.get("tm_smooth", 0.0)),
                        key="tm_curves", config={"displaylogo": False})
        heat = figures.kl_dims_over_training(records)
        if heat is not None:
            st.markdown("**KL per latent dimension over training** (validation images, nats): a row that fades to the "
                        "bottom of the scale is a dimension collapsing to the prior")
            st.plotly_chart(figures.kl_dims_heatmap(*heat), key="tm_kl_dims", config={"displaylogo": False})
        if not now.running:
            for warning in caches.run_collapse_warnings(now.folder):
                st.warning(warning, icon=":material/warning:")
        left, right = st.columns(2)
        with left:
            grids = sorted((now.folder / "samples").glob("epoch_*.png"))
            if len(grids) > 1:
                k = st.select_slider("Samples at epoch", list(range(len(grids))), value=len(grids) - 1,
                                     format_func=lambda j: grids[j].stem.removeprefix("epoch_").lstrip("0") or "0",
                                     key=f"tm_epoch_grid_{now.name}_{len(grids)}")  # a new grid moves it to the end
                epoch = grids[k].stem.split("_")[-1]
                widgets.show_png_file(grids[k], caption=f"samples after epoch {int(epoch)}")
                widgets.show_png_file(grids[k].with_name(f"recon_{epoch}.png"),
                                      caption=f"reconstructions after epoch {int(epoch)}")
            else:
                st.markdown("**Samples** (latest checkpoint)")
                if not widgets.show_png_file(now.folder / SAMPLES):
                    st.caption("no samples yet")
        with right:
            st.markdown("**Reconstructions** (validation images, model below each data row)")
            pairs = caches.run_reconstructions(now.folder)
            if pairs is None:
                st.caption("no checkpoint yet")
            else:
                widgets.show_images(pairs, nrow=8)
        everything = manager.runs(sid)  # read now: a table drawn with the page would fall behind a live run
        with st.expander(f"All runs of this session ({len(everything)}) with their settings", expanded=True):
            st.dataframe(tables.runs_table(everything), hide_index=True)

    view()


settings_panel()
runs = manager.runs(sid)
if not runs:
    st.info("No runs yet in this session. Open **New run** and press **Start training**: the defaults (σ-VAE on "
            f"the 8×8 digits, {APP_DEFAULTS['epochs']} epochs) give recognisable reconstructions in well under a "
            "minute.")
    st.stop()

st.subheader("Runs")
names = [r.name for r in runs]
if st.session_state.get("tm_selected_run") not in names:
    st.session_state["tm_selected_run"] = names[0]
labels = {r.name: r.label for r in runs}
# The widget's key follows the labels: a selectbox keeps showing its first labels for an unchanged key, so a run
# that ended would still read 'running'. The choice itself lives in tm_selected_run.
picker_key = "tm_run_" + hashlib.sha1("|".join(labels.values()).encode()).hexdigest()[:10]
selected = st.selectbox("Run", names, index=names.index(st.session_state["tm_selected_run"]),
                        format_func=labels.get, key=picker_key)
st.session_state["tm_selected_run"] = selected
info = next(r for r in runs if r.name == selected)
controls(info)
c1, c2, c3 = st.columns([1, 3, 2])
c1.segmented_control("x axis", ["step", "epoch"], default="step", key="tm_x", persist_state="session")
c2.multiselect("Overlay other runs", [r.name for r in runs if r.name != selected], format_func=labels.get,
               key="tm_overlay", help="Draw other runs of this session on the same charts, one colour each.")
c3.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="tm_smooth", help="TensorBoard's exponential moving average.")
if st.session_state.get("tm_error"):
    st.error(tables.page_message(st.session_state["tm_error"]))
evaluation_panel(info)
name_and_command(info)
live_view(info)
sweep_section(runs)

"""Train, evaluate, bundle and commit every preset as a checkpoint in checkpoints/, from scratch, resumably.

    python experiments/train_zoo.py                        # every model not yet at its budget, 1 process
    python experiments/train_zoo.py --workers 2 --threads 1 --commit   # the background zoo run
    python experiments/train_zoo.py --stage eval           # re-evaluate the bundled models in place
    python experiments/train_zoo.py --stage two-stage --commit   # add the 2-stage VAE's FD to each eval.json
    python experiments/train_zoo.py --only sigma-vae --force

A model trains in runs/zoo/<name>/ (a normal run folder, so a killed run resumes from its last
checkpoint), is evaluated there, and is then installed into checkpoints/<name>/ together with its
catalog row and reference outputs (tests/data/bundled_outputs.json); with --commit each installed
model is committed on its own, so an interrupted zoo run keeps everything that finished. Each model
is trained in its own subprocess, so a long zoo run picks up engine fixes committed meanwhile.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import torch  # noqa: E402
from zoo_common import (  # noqa: E402
    ALIASES,
    BY_NAME,
    CHECK_METRICS,
    CHECK_N_TEST,
    EVAL_N_TEST,
    HUB_OWNER,
    SEED,
    ZOO,
    ZooEntry,
    git_commit,
    reference_outputs,
    reproduce_command,
    write_card,
)
from zoo_table import write_results  # noqa: E402

import vaecore  # noqa: E402
from vaecore.evaluation import protocol  # noqa: E402
from vaecore.files import CATALOG, CONFIG, EVAL, PER_IMAGE, TRAIN, WEIGHTS, sampler_files  # noqa: E402
from vaecore.presets import get_preset, train_config  # noqa: E402
from vaecore.training import run_folder as rf  # noqa: E402
from vaecore.training.trainer import Trainer  # noqa: E402
from vaecore.utils import atomic_write_bytes, atomic_write_json  # noqa: E402

# the evaluation protocol (metrics, K, sample seeds, fitted samplers) is the engine's, shared with the app's runs.
# The 2-stage VAE (5–6 CPU-minutes and 8.7 MB per model) has a stage of its own that adds its FD to eval.json
# without bundling its weights: --stage two-stage. The MAF (316 kB) refits in ~20 s on demand.
EVAL_METRICS, SAMPLER_METRICS, FITTED_SAMPLERS = protocol.METRICS, protocol.SAMPLER_METRICS, protocol.FITTED_SAMPLERS
IWAE_K, SAMPLE_SEEDS = protocol.IWAE_K, protocol.SAMPLE_SEEDS
TWO_STAGE_KEY = "fd_two-stage"
GMM_FILES = sampler_files("gmm")
BUNDLE = (rf.CONFIG, rf.WEIGHTS, rf.TRAIN, rf.METRICS, rf.SAMPLES, rf.GMM_SAMPLES, rf.EVAL, PER_IMAGE, rf.CARD,
          *GMM_FILES)  # MAF (316 kB) refits in ~20 s on demand
MAX_FILE_BYTES = 10 * 2**20  # a Hub repo or Space without LFS refuses larger files
DONE = "zoo-trained.json"


def model_overrides(entry: ZooEntry) -> dict:
    return {} if entry.latent_dim is None else {"latent_dim": entry.latent_dim}


def trained_epochs(folder: Path) -> int | None:
    """Epochs of the model bundled in `folder` (None when there is none)."""
    if not (folder / WEIGHTS).is_file() or not (folder / TRAIN).is_file():
        return None
    return int(json.loads((folder / TRAIN).read_text())["epochs"])


def needs_training(entry: ZooEntry, checkpoints: Path) -> bool:
    return (trained_epochs(checkpoints / entry.name) or 0) < entry.epochs


# training, evaluation --------------------------------------------------------------------------------
def train_entry(entry: ZooEntry, stage: Path, dataset: vaecore.Dataset, threads: int | None) -> None:
    """Train into the staging run folder, resuming a killed run from its last checkpoint."""
    if (stage / DONE).is_file():
        return
    t = time.time()
    if rf.holds_run(stage):
        print(f"[zoo] {entry.name}: resuming {stage}", flush=True)
        more = {"threads": threads} if threads else {}  # a resume may use more (or fewer) threads than the start
        result = Trainer.resume(stage, dataset=dataset, progress=True, **more).fit()
    else:
        if stage.exists():
            shutil.rmtree(stage)
        tc = train_config(entry.preset, epochs=entry.epochs, seed=SEED, data="mnist", threads=threads)
        result = vaecore.train(entry.preset, dataset, stage, tc, progress=True, **model_overrides(entry))
    if result.status != "finished":
        raise RuntimeError(f"{entry.name}: {result.status} at step {result.step}: {result.message}")
    atomic_write_json(stage / DONE, {"seconds": round(time.time() - t, 1), "step": result.step,
                                     "threads": threads, "torch": torch.__version__})
    print(f"[zoo] {entry.name}: trained {entry.epochs} epochs ({result.step} steps) in {time.time() - t:.0f}s",
          flush=True)


def evaluate_folder(folder: Path, dataset: vaecore.Dataset) -> dict:
    """eval.json (test metrics with their SE or seed spread; FD, precision/recall and density/coverage of the prior's
    and each fitted sampler's images), per_image.safetensors (the per-image values on the evaluated test images)
    and the model card."""
    from vaecore.evaluation import metrics

    model = vaecore.load(folder)
    old = json.loads((folder / EVAL).read_text()) if (folder / EVAL).is_file() else {}
    result, store = protocol.evaluate_with_protocol(model, dataset, folder, progress=_tqdm_progress())
    if old.get(TWO_STAGE_KEY) is not None:  # the 2-stage VAE is refitted by its own stage (5-6 CPU-minutes a model)
        result[TWO_STAGE_KEY] = old[TWO_STAGE_KEY]
        if TWO_STAGE_KEY in (old.get("uncertainty") or {}):
            result["uncertainty"][TWO_STAGE_KEY] = old["uncertainty"][TWO_STAGE_KEY]
    result["n_test"] = EVAL_N_TEST
    if not model.capabilities.prior_samples:
        write_gmm_samples(folder, model)
    check = metrics.evaluate(model, dataset, CHECK_METRICS, n_test=CHECK_N_TEST, seed=SEED)
    result["check"] = {k: check[k] for k in CHECK_METRICS}
    protocol.write_evaluation(folder, result, store)
    write_card(folder, result)
    return result


def _tqdm_progress() -> protocol.Progress:
    """Progress bars in the terminal, one per stage (metrics.evaluate's own when given True)."""
    from vaecore.evaluation.runtime import as_progress

    return as_progress(True)


def evaluated_now(folder: Path) -> bool:
    """Whether `folder` holds an evaluation of this protocol: per-image values and the sample seeds of SAMPLE_SEEDS."""
    if not (folder / EVAL).is_file() or not (folder / PER_IMAGE).is_file():
        return False
    saved = json.loads((folder / EVAL).read_text())
    return (saved.get("settings") or {}).get("sample_seeds") == SAMPLE_SEEDS and all(k in saved for k in EVAL_METRICS)


def write_eval(folder: Path, result: dict) -> None:
    """eval.json and the model card that shows it."""
    atomic_write_json(folder / EVAL, result)
    write_card(folder, result)


def add_two_stage_fd(entry: ZooEntry, repo: Path, dataset: vaecore.Dataset, commit: bool) -> float | None:
    """Fit the 2-stage VAE on a bundled model's training latents (in runs/zoo-two-stage/, not bundled) and add
    its FD to the model's eval.json and card; committed on its own, so the stage resumes model by model."""
    from vaecore import samplers
    from vaecore.evaluation import metrics

    folder = repo / "checkpoints" / entry.name
    model = vaecore.load(folder)
    t = time.time()
    sampler = samplers.load_or_fit(model, repo / "runs" / "zoo-two-stage" / entry.name, "two-stage", dataset,
                                   progress=True)
    res = metrics.evaluate(model, dataset, ["fd"], n_test=EVAL_N_TEST, seed=SEED, sampler=sampler,
                           n_samples=EVAL_N_TEST, sample_seeds=SAMPLE_SEEDS)
    fd = res.get("fd")
    with install_lock(repo):
        saved = json.loads((folder / EVAL).read_text())  # stored with sorted keys: the card's order back
        first = [k for k in EVAL_METRICS if k in saved]
        result = {**{k: saved[k] for k in first}, **{k: v for k, v in saved.items() if k not in first},
                  TWO_STAGE_KEY: fd}
        if "fd" in res["uncertainty"]:
            result.setdefault("uncertainty", {})[TWO_STAGE_KEY] = res["uncertainty"]["fd"]
        write_eval(folder, result)
        write_results(repo / "checkpoints")
        if commit:
            git_commit(repo, [f"checkpoints/{entry.name}/{EVAL}", f"checkpoints/{entry.name}/{rf.CARD}",
                              "checkpoints/RESULTS.md"],
                       f"zoo: {entry.name}: FD of the 2-stage VAE sampler added to its eval")
    print(f"[zoo] {entry.name}: 2-stage FD {fd} in {time.time() - t:.0f}s", flush=True)
    return fd


def write_gmm_samples(folder: Path, model: torch.nn.Module | None = None) -> Path:
    """samples-gmm.png: 64 decoded draws (seed 0) of the GMM-10 fitted on the training latents, the
    sample grid of a model that has no prior to sample (Pythae's way to generate from an AE)."""
    from vaecore import samplers
    from vaecore.data.images import make_grid, to_png_bytes

    model = model or vaecore.load(folder)
    sampler = samplers.load_sampler(folder, "gmm")
    with torch.no_grad():
        z = sampler.sample_latents(64, generator=torch.Generator().manual_seed(SEED))
        images = model.decode(z)
    atomic_write_bytes(folder / rf.GMM_SAMPLES, to_png_bytes(make_grid(images, nrow=8), scale=2))
    return folder / rf.GMM_SAMPLES


# installing into checkpoints/ and committing ---------------------------------------------------------
@contextmanager
def install_lock(repo: Path) -> Iterator[None]:
    path = repo / "runs" / "zoo" / ".install.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def catalog_row(name: str, folder: Path) -> dict:
    entry = BY_NAME[name]
    config = json.loads((folder / CONFIG).read_text())
    epochs = trained_epochs(folder)
    return {"name": name, "title": entry.display_title, "description": get_preset(entry.preset).description,
            "data": config.get("dataset"), "likelihood": config.get("likelihood"),
            "likelihood_kwargs": config.get("likelihood_kwargs"), "latent_dim": config.get("latent_dim"),
            "model_type": config.get("model_type"), "epochs": epochs, "seed": SEED,
            "hub_repo_id": f"{HUB_OWNER}/{name}", "reproduce": reproduce_command(entry, epochs),
            "location": "bundled" if entry.bundle else "hub"}


def write_catalog(checkpoints: Path) -> None:
    """The bundled models (folders in checkpoints/) and, apart, the Hub-only ones trained in runs/zoo/."""
    rows = [catalog_row(e.name, checkpoints / e.name) for e in ZOO
            if e.bundle and trained_epochs(checkpoints / e.name)]
    stage = checkpoints.parent / "runs" / "zoo"
    old = json.loads((checkpoints / CATALOG).read_text()) if (checkpoints / CATALOG).is_file() else {}
    hub = {row["name"]: row for row in old.get("hub_models", [])}
    for e in ZOO:
        if not e.bundle and (stage / e.name / EVAL).is_file():
            hub[e.name] = {**catalog_row(e.name, stage / e.name),
                           "publish": f"python -m vaecore publish runs/zoo/{e.name} {HUB_OWNER}/{e.name}",
                           "eval": json.loads((stage / e.name / EVAL).read_text())}
    others = {k: v for k, v in old.items() if k not in ("models", "aliases", "hub_models")}  # e.g. a study's rows
    atomic_write_json(checkpoints / CATALOG, {"models": rows, "aliases": ALIASES, "hub_models": list(hub.values()),
                                              **others})


def install(name: str, stage: Path, repo: Path, commit: bool, reevaluated: bool = False) -> None:
    """Replace checkpoints/<name> by the staged model, refresh the catalog and its reference outputs
    (`reevaluated`: the bundled model evaluated again in place, not trained; the commit message says which)."""
    checkpoints = repo / "checkpoints"
    dest = checkpoints / name
    if not BY_NAME[name].bundle:
        with install_lock(repo):
            write_catalog(checkpoints)
            write_results(checkpoints)
            if commit:
                git_commit(repo, [f"checkpoints/{CATALOG}", "checkpoints/RESULTS.md"],
                           f"zoo: {name} trained and evaluated for the Hub (not bundled); listed under hub_models "
                           "with its eval")
        print(f"[zoo] {name}: a Hub model, not bundled; ready to publish from {stage}", flush=True)
        return
    with install_lock(repo):
        new = checkpoints / f".{name}.new"
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir()
        too_big = (stage / GMM_FILES[0]).is_file() and \
            (stage / GMM_FILES[0]).stat().st_size >= MAX_FILE_BYTES  # VQ latents: 784-d covariances
        for file in BUNDLE:
            if (stage / file).is_file() and not (too_big and file in GMM_FILES):
                shutil.copy2(stage / file, new / file)
        old = checkpoints / f".{name}.old"
        if dest.exists():
            dest.rename(old)
        new.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        write_catalog(checkpoints)
        refs_path = repo / "tests" / "data" / "bundled_outputs.json"
        refs = json.loads(refs_path.read_text())
        refs[name] = reference_outputs(vaecore.load(dest))
        atomic_write_bytes(refs_path, (json.dumps(refs, indent=1, sort_keys=True) + "\n").encode())
        write_results(checkpoints)
        if commit:
            epochs = trained_epochs(dest)
            git_commit(repo, [f"checkpoints/{name}", f"checkpoints/{CATALOG}", "checkpoints/RESULTS.md",
                              "tests/data/bundled_outputs.json"],
                       f"zoo re-eval: {name} ({epochs} epochs on MNIST, seed {SEED}) evaluated again with the current "
                       "protocol; its eval, card and reference outputs" if reevaluated else
                       f"zoo: {name} trained {epochs} epochs on MNIST (seed {SEED}), with its eval, card and "
                       "reference outputs")
    print(f"[zoo] {name}: installed in {dest}" + (" and committed" if commit else ""), flush=True)


# drivers ------------------------------------------------------------------------------------------------
def run_one(entry: ZooEntry, repo: Path, threads: int | None, commit: bool, force: bool, phase: str) -> None:
    """Train (phase train), evaluate + install (phase finish), or both (phase all)."""
    if threads:
        torch.set_num_threads(threads)
    dataset = vaecore.load_dataset("mnist", seed=SEED)
    stage = repo / "runs" / "zoo" / entry.name
    if phase in ("train", "all"):
        if force:
            shutil.rmtree(stage, ignore_errors=True)
        train_entry(entry, stage, dataset, threads)
    if phase == "train":
        return
    t = time.time()
    result = evaluate_folder(stage, dataset)
    print(f"[zoo] {entry.name}: evaluated in {time.time() - t:.0f}s: "
          + ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)), flush=True)
    install(entry.name, stage, repo, commit)


def run_workers(entries: list[ZooEntry], args: argparse.Namespace) -> list[str]:
    """Each model trained, then evaluated, in subprocesses of their own (so engine fixes made meanwhile are
    picked up, evaluation fixes included), `workers` models at a time."""
    todo: queue.Queue[ZooEntry] = queue.Queue()
    for e in entries:
        todo.put(e)
    failed: list[str] = []
    finished: list[str] = []
    t0 = time.time()

    def work() -> None:
        while True:
            try:
                entry = todo.get_nowait()
            except queue.Empty:
                return
            cmd = [sys.executable, str(Path(__file__).resolve()), "--only", entry.name, "--repo", str(args.repo)]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            cmd += ["--commit"] if args.commit else []
            cmd += ["--force"] if args.force else []
            cmd += ["--epochs", str(args.epochs)] if args.epochs else []
            ok = subprocess.run([*cmd, "--phase", "train"]).returncode == 0
            if not ok or subprocess.run([*cmd, "--phase", "finish"]).returncode != 0:
                failed.append(entry.name)
                print(f"[zoo] {entry.name}: FAILED (see above); rerun to retry", flush=True)
            finished.append(entry.name)
            elapsed = time.time() - t0
            eta = elapsed / len(finished) * (len(entries) - len(finished)) / 60
            print(f"[zoo] {len(finished)}/{len(entries)} models done in {elapsed / 60:.0f} min, about {eta:.0f} min "
                  "left", flush=True)

    threads = [threading.Thread(target=work) for _ in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose checkpoints/ receives the models")
    p.add_argument("--stage", choices=["train", "eval", "two-stage"], default="train",
                   help="train: train + evaluate + install what is below budget; eval: re-evaluate bundled models; "
                        "two-stage: add the 2-stage VAE's FD to the bundled models' evals that lack it")
    p.add_argument("--only", nargs="*", help="names to process, in this order (default: the whole zoo)")
    p.add_argument("--force", action="store_true", help="retrain models that already meet their budget")
    p.add_argument("--workers", type=int, default=1, help="models trained at once, each in its own process")
    p.add_argument("--threads", type=int, default=None, help="torch threads per model")
    p.add_argument("--commit", action="store_true", help="git-commit each model as it is installed")
    p.add_argument("--phase", choices=["all", "train", "finish"], default="all", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=None, help="another budget for every model (a quick check)")
    p.add_argument("--resume", action="store_true",
                   help="--stage eval: skip models already evaluated with this protocol (per-image values, seeds)")
    p.add_argument("--no-install", dest="install", action="store_false",
                   help=f"--stage eval: write {EVAL}, {PER_IMAGE} and the card only (no catalog, reference outputs or "
                        "RESULTS.md)")
    args = p.parse_args(argv)
    if args.epochs:
        for i, e in enumerate(ZOO):
            ZOO[i] = BY_NAME[e.name] = replace(e, epochs=args.epochs)
    unknown = sorted(set(args.only or ()) - set(BY_NAME))
    if unknown:
        sys.exit(f"not in the zoo: {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    checkpoints = args.repo / "checkpoints"
    entries = [BY_NAME[n] for n in dict.fromkeys(args.only)] if args.only else list(ZOO)  # --only: in its order
    t0 = time.time()
    if args.stage == "eval":
        if args.threads:
            torch.set_num_threads(args.threads)
        dataset = vaecore.load_dataset("mnist", seed=SEED)
        for e in entries:
            if not trained_epochs(checkpoints / e.name):
                continue
            if args.resume and evaluated_now(checkpoints / e.name):
                print(f"[zoo] {e.name}: already evaluated with this protocol", flush=True)
                continue
            t = time.time()
            evaluate_folder(checkpoints / e.name, dataset)
            print(f"[zoo] {e.name}: evaluated in {time.time() - t:.0f}s", flush=True)
            if args.install:
                install(e.name, checkpoints / e.name, args.repo, args.commit, reevaluated=True)
        print(f"[zoo] evaluated {len(entries)} models in {time.time() - t0:.0f}s", flush=True)
        return
    if args.stage == "two-stage":
        if args.threads:
            torch.set_num_threads(args.threads)
        dataset = vaecore.load_dataset("mnist", seed=SEED)
        todo = [e for e in entries if e.bundle and (checkpoints / e.name / EVAL).is_file()
                and TWO_STAGE_KEY not in json.loads((checkpoints / e.name / EVAL).read_text())]
        print(f"[zoo] 2-stage FD for {len(todo)} models: {', '.join(e.name for e in todo)}", flush=True)
        for i, e in enumerate(todo, 1):
            add_two_stage_fd(e, args.repo, dataset, args.commit)
            print(f"[zoo] {i}/{len(todo)} in {(time.time() - t0) / 60:.1f} min", flush=True)
        return
    entries = [e for e in entries if args.force or needs_training(e, checkpoints)]
    if len(entries) == 1 and args.workers == 1:
        run_one(entries[0], args.repo, args.threads, args.commit, args.force, args.phase)
        return
    print(f"[zoo] {len(entries)} models to train: {', '.join(e.name for e in entries)}", flush=True)
    failed = run_workers(entries, args)
    print(f"[zoo] done in {(time.time() - t0) / 60:.1f} min; failed: {', '.join(failed) or 'none'}", flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

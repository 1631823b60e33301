"""The training loop: one optimizer per parameter group (chosen by name, with a per-epoch schedule),
KL warm-up, one validation pass per epoch, keep-best and early stopping, per-epoch sample grids,
exact resume, a divergence stop that keeps the last good checkpoint, callbacks (live monitors,
experiment trackers), and data parallelism over torchrun processes.

Its parts, each in its own module: `runtime` (device, processes, threads, mixed precision,
compile, channels-last, measured CPU conv kernels), `checkpointing` (what resume restores),
`validation` (the epoch's pass and the guard's check), `epoch_end` (best model, early stopping,
sample grids), `guard` (divergence), `steps` (the step over parameter groups), `optim`, and
`run_folder`, which owns every file name of a run folder:
  config.json, model.safetensors, README.md   the model, loadable by `vaecore.load(run_dir)`
  train.json                                   the TrainConfig (with the world size)
  checkpoint.safetensors                       weights + every optimizer + every rank's RNG state, for --resume
  metrics.jsonl                                one JSON record per logged step / epoch / event
  best/                                        the model of the lowest validation loss so far, and best.json
  samples/epoch_NNNN.png, recon_NNNN.png       sample and reconstruction grids after each epoch
  samples.png                                  the latest sample grid
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from vaecore.config import TrainConfig, meta_of
from vaecore.data.datasets import Dataset
from vaecore.data.pipeline import Augment, TrainBatches
from vaecore.models.base import PretrainedModel
from vaecore.runtime import conv_autotune, memory
from vaecore.training import checkpointing
from vaecore.training import run_folder as rf
from vaecore.training.epoch_end import BEST, BestModel, sample_grids, write_grids
from vaecore.training.guard import DivergenceGuard, TrainingDiverged
from vaecore.training.optim import build_optimizer, build_scheduler, step_scheduler
from vaecore.training.run_folder import CHECKPOINT, METRICS, read_metrics
from vaecore.training.runtime import Runtime
from vaecore.training.steps import StepContext, group_step
from vaecore.training.validation import Validation
from vaecore.utils import seed_everything

Callback = Callable[[dict[str, Any]], None]
__all__ = ["BEST", "CHECKPOINT", "METRICS", "TrainResult", "Trainer", "TrainingDiverged", "read_metrics",
           "train"]


@dataclass
class TrainResult:
    status: str  # "finished" | "stopped" | "diverged"
    step: int
    epoch: int
    message: str = ""


class Trainer:
    """Trains a model on a Dataset into a run folder; thread-safe `stop()` for the app.

    The caller's config is never changed: the trainer keeps its own copy (`self.config`), with the
    world size and, once started, the data's record."""

    def __init__(self, model: PretrainedModel, dataset: Dataset, config: TrainConfig, out_dir: str | Path,
                 callbacks: Iterable[Callback] = (), progress: bool = False) -> None:
        check_inputs(model, dataset, config, out_dir)
        self.runtime = Runtime(config)
        dist = self.runtime.dist
        self.config = config.replace(world_size=dist.world_size)
        self.out_dir = rf.check_run_folder(out_dir)
        self.model = self.runtime.place(model)
        self._released: dict[str, dict[str, str]] | None = None  # the run's kernel choices once fit() returned
        self.dataset = dataset
        n_val = dataset.size("val") if config.val_limit is None else min(config.val_limit, dataset.size("val"))
        val_rows = torch.arange(n_val)[dist.rank::dist.world_size]
        if config.binarize != "none":  # binary images drawn from the grey levels (vaecore/data/binarize)
            from vaecore.data.binarize import binarized_split
            x_val = binarized_split(dataset.x_val, "val")[val_rows].to(self.runtime.device)
        else:
            x_val = dataset.take("val", val_rows, self.runtime.device)
        self.callbacks = list(callbacks)
        self.progress = progress

        self.groups = list(self.model.param_groups())
        names = [g.name for g in self.groups]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"the model's param_groups() must give distinct group names, got {names}")
        self.optimizers = [build_optimizer(config, g.params, config.lr * g.lr_scale) for g in self.groups]
        self.schedulers = [build_scheduler(config, opt) for opt in self.optimizers]
        self._loss, self._ddp_reduces = self.runtime.loss_function(self.model, len(self.groups) > 1)

        self.n_train = dataset.size("train")
        if self.n_train == 0:
            raise ValueError("the training set is empty; check --limit and the dataset")
        self.batch_size = min(config.batch_size, self.n_train)
        if self.batch_size % dist.world_size:
            raise ValueError(f"batch size {self.batch_size} does not split over {dist.world_size} processes; "
                             f"choose a multiple of {dist.world_size}")
        self.steps_per_epoch = max(1, self.n_train // self.batch_size)
        self.batches = TrainBatches(dataset.images["train"], batch_size=self.batch_size, seed=config.seed,
                                    device=self.runtime.device, rank=dist.rank, world=dist.world_size,
                                    augment=Augment(hflip=config.hflip, dequantize=config.dequantize,
                                                    binarize=config.binarize),
                                    workers=config.data_workers)
        total = config.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.augment = None
        if config.augment:
            from vaecore.data.transforms import TransformRange
            self.augment = TransformRange(**config.augment)

        self.validation = Validation(self.model, x_val, self.runtime, config.seed, config.val_batch_size,
                                     self.n_train)
        self.guard = DivergenceGuard(config.divergence_factor)
        self.best = BestModel(self.out_dir, keep=config.keep_best and dist.is_main, patience=config.early_stopping)
        self.step = 0
        self._resumed = False
        self._last_ckpt = 0  # the step of the last checkpoint written
        self._last_val: tuple[int, float] | None = None  # (step, validation loss) of the last validation
        self._last_grid = -1  # the step of the last sample grids
        self._stop = threading.Event()
        self._trackers_added = False

    @classmethod
    def resume(cls, out_dir: str | Path, dataset: Dataset | None = None, callbacks: Iterable[Callback] = (),
               progress: bool = False, **changes: Any) -> Trainer:
        """Re-open a run folder and continue exactly where its last checkpoint left off.

        `changes` may set the settings a resume can change (`Meta.resumable`: extend the run with epochs=20,
        max_steps=None; logging, checkpoints, device, threads); any other is a ValueError, since a resumed run
        continues with the settings it was trained with.
        """
        from vaecore.hub import load_folder

        fixed = sorted(k for k in changes if k not in TrainConfig.__dataclass_fields__
                       or not meta_of(TrainConfig, k).resumable)
        if fixed:
            can = [f.name for f in fields(TrainConfig) if meta_of(TrainConfig, f.name).resumable]
            raise ValueError(f"resuming cannot change {', '.join(fixed)}: a resumed run continues with the "
                             f"settings it was trained with (a resume may change {', '.join(can)})")
        out_dir = Path(out_dir)
        if not rf.holds_run(out_dir):
            raise FileNotFoundError(f"{out_dir / CHECKPOINT} not found: nothing to resume in {out_dir}")
        recorded = rf.read_train_json(out_dir)
        try:
            # a train.json from before measured kernels were the default trained on PyTorch's own kernels
            tc = TrainConfig.from_dict({"conv_autotune": False, **recorded, **changes})
        except ValueError as e:
            raise rf.RunFolderError(f"{out_dir / rf.TRAIN}: {e}") from e
        model = load_folder(out_dir)
        if dataset is None:
            source = rf.data_source(tc.to_dict())  # what the run recorded, with the changes applied
            if source.built_in_python:
                raise rf.RunFolderError(
                    f"{out_dir} was trained on a Dataset built in Python ({source.name[len(rf.PYTHON_DATA):]!r}), "
                    "which cannot be reloaded by name; resume it with Trainer.resume(folder, dataset=...)")
            dataset = source.load(progress=progress)
        trainer = cls(model, dataset, tc, out_dir, callbacks, progress)
        restored = checkpointing.load(out_dir, trainer.model, trainer.optimizers, trainer.schedulers,
                                      trainer.runtime)
        trainer.step = trainer._last_ckpt = restored.step
        trainer.best.load_state_dict(restored.best)
        trainer.guard.load_state_dict(restored.guard)
        trainer._resumed = True
        return trainer

    # public control and views ---------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to stop after the current step; it checkpoints first."""
        self._stop.set()

    def add_callback(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def evaluate(self) -> dict[str, float]:
        """The epoch's validation: loss, ELBO (where defined) and reconstruction MSE per example."""
        return self.validation.run()

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The first parameter group's optimizer (the only one of single-group models)."""
        return self.optimizers[0]

    @property
    def scheduler(self) -> Any | None:
        return self.schedulers[0]

    @property
    def kernel_choices(self) -> dict[str, dict[str, str]]:
        """The conv kernels this run computes with (by module and input signature), also after fit() returned."""
        return conv_autotune.choices(self.model) if self._released is None else self._released

    # the loop ---------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Run until the configured epochs / max steps, a stop request, or a diverging loss.

        The run folder is locked for the whole run: a second writer gets `RunLockedError`; a new run in a
        folder that already holds one gets `RunExistsError` (resume it instead).
        """
        if self._released is not None:  # fit() again on this trainer: the kernels and format it had
            self.runtime.place(self.model)
            conv_autotune.load_choices(self.model, self._released)
        try:
            with rf.RunLock(self.out_dir) if self.runtime.dist.is_main else contextlib.nullcontext():
                return self._fit()
        finally:
            memory.release()  # the freed memory the run kept for reuse goes back to the system
            # the model handed back computes like the same weights loaded (no kernels of the run's own)
            self._released = self.runtime.release(self.model)

    def _fit(self) -> TrainResult:
        fresh = self._start()
        self._emit({"kind": "event", "event": "started" if fresh else "resumed", "step": self.step,
                    "total_steps": self.total_steps, "model": self.model.config.preset})
        self.model.train()
        self._add_trackers()
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True)
        t_last, n_last = time.perf_counter(), 0
        t_start, step_start = time.perf_counter(), self.step
        status, message = "finished", ""
        try:
            while self.step < self.total_steps:
                if self._stop.is_set():
                    status, message = "stopped", f"stopped at step {self.step}; resume with --resume"
                    break
                epoch, index = divmod(self.step, self.steps_per_epoch)
                x = self._batch(epoch, index)
                ctx = self._context(epoch)
                with self.runtime.autocast():
                    out = self._loss(x, ctx)
                self.guard.check_step(float(out.loss.detach()), self.step + 1, self._last_ckpt)
                group_step(self.groups, self.optimizers, out, self.config.grad_clip, self.runtime.scaler,
                           None if self._ddp_reduces else self.runtime.dist)
                self.step += 1
                n_last += x.shape[0]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{out.logs['loss']:.2f}")
                if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                    now = time.perf_counter()
                    rate = n_last / max(now - t_last, 1e-9)
                    per_step = (now - t_start) / max(self.step - step_start, 1)
                    self._emit({"kind": "step", "step": self.step, "epoch": self.step / self.steps_per_epoch,
                                **out.logs, "lr": self.optimizer.param_groups[0]["lr"], "kl_weight": ctx.kl_weight,
                                "images_per_s": rate, "eta_s": per_step * (self.total_steps - self.step)})
                    t_last, n_last = now, 0
                end_of_epoch = self.step % self.steps_per_epoch == 0
                early = None
                if end_of_epoch:
                    self.model.on_epoch_end(self._context(epoch))
                if end_of_epoch or self.step == self.total_steps:
                    val = self.evaluate()
                    self._last_val = (self.step, val["val_loss"])
                    self._emit({"kind": "epoch", "step": self.step, "epoch": self.step / self.steps_per_epoch,
                                **val})
                    if end_of_epoch:
                        early = self._end_epoch(val)
                if end_of_epoch or self.step % self.config.checkpoint_every == 0:
                    self._checkpoint()
                    self.best.save(self.model, self.step)
                if early:
                    status, message = "finished", early
                    break
        except TrainingDiverged as e:
            status, message = "diverged", str(e)
        finally:
            if bar is not None:
                bar.close()
        if status != "diverged" and self._last_grid != self.step:
            self._save_grids(None)
        if status != "diverged" and self._last_ckpt != self.step:
            try:
                self._checkpoint()
            except TrainingDiverged as e:
                status, message = "diverged", str(e)
        self._emit({"kind": "event", "event": status, "step": self.step, "message": message})
        if status == "diverged":
            raise TrainingDiverged(message)
        return TrainResult(status, self.step, self.step // self.steps_per_epoch, message)

    def _start(self) -> bool:
        """Holding the lock: refuse to overwrite a run, clear killed writes' temp files, record train.json;
        a fresh run seeds everything and writes its step-0 checkpoint. Returns whether the run is fresh."""
        fresh = not self._resumed
        main = self.runtime.dist.is_main  # the other ranks of a distributed run write nothing
        if main and fresh and rf.holds_run(self.out_dir):
            raise rf.RunExistsError(f"{self.out_dir} already holds a run; resume it (Trainer.resume, --resume) "
                                    "or choose another folder")
        if main:
            rf.clean_temp_files(self.out_dir)
            if not fresh and self.best.keep:
                rf.repair_best(self.out_dir, self.model, self.best.state)  # a kill between best/'s files
        if fresh or getattr(self.dataset, "source", None):
            self.config = self.config.replace(**rf.dataset_record(self.dataset, self.config.seed))
        if main:
            rf.write_train_json(self.out_dir, self.config.to_dict())
        if fresh:
            seed_everything(self.config.seed)
            if main:
                (self.out_dir / METRICS).unlink(missing_ok=True)
            self.guard.check_checkpoint(self.model, None, 0, 0)  # finite weights; the first validation sets the scale
            self._save_checkpoint()
        elif main:
            rf.truncate_metrics(self.out_dir, self.step)
        return fresh

    def _add_trackers(self) -> None:
        """Each rank its own noise stream from a fresh start; experiment trackers on rank 0."""
        dist = self.runtime.dist
        if not self._resumed and dist.rank:
            torch.manual_seed(self.config.seed + dist.rank)
        if self.config.log_to and dist.is_main and not self._trackers_added:
            from vaecore.training.trackers import build_trackers

            self.callbacks.extend(build_trackers(self.config.log_to, self.out_dir, self.config.to_dict()))
            self._trackers_added = True

    def _batch(self, epoch: int, index: int) -> torch.Tensor:
        """This rank's shard of batch `index` of the epoch's permutation."""
        x = self.batches.batch(epoch, index)
        if self.augment is not None:
            from vaecore.data.transforms import apply_affine, random_affine
            x = apply_affine(x, random_affine(x.shape[0], self.augment, device=x.device))
        return self.runtime.prepare(x)

    def _context(self, epoch: int) -> StepContext:
        warm = self.config.kl_warmup_steps
        return StepContext(step=self.step, epoch=epoch, total_steps=self.total_steps,
                           steps_per_epoch=self.steps_per_epoch, dataset_size=self.n_train,
                           kl_weight=min(1.0, (self.step + 1) / warm) if warm else 1.0, training=True)

    def _emit(self, record: dict[str, Any]) -> None:
        """A record into metrics.jsonl and to every callback (rank 0 only)."""
        if not self.runtime.dist.is_main:
            return
        record = {"time": time.time(), **record}
        rf.append_metric(self.out_dir, record)
        for cb in self.callbacks:
            cb(record)

    def _end_epoch(self, val: dict[str, float]) -> str | None:
        """Schedules, grids and the best model after an epoch's validation; the early-stopping message if the
        run should end."""
        epoch = self.step // self.steps_per_epoch
        for sched in self.schedulers:
            step_scheduler(sched, val["val_loss"])
        self._save_grids(epoch)
        return self.best.update(val["val_loss"], self.step, epoch)

    def _save_grids(self, epoch: int | None) -> None:
        """Sample and reconstruction grids to the run folder (rank 0, where enabled) and to the callbacks."""
        self._last_grid = self.step
        if not self.config.sample_grids or not self.runtime.dist.is_main:
            return
        grids = sample_grids(self.model, self.dataset.take("val", slice(0, 32)), self.runtime.device)
        write_grids(self.out_dir, grids, epoch)
        for cb in self.callbacks:
            cb({"kind": "images", "step": self.step, "epoch": epoch, **grids})

    def _checkpoint(self) -> None:
        """Save a checkpoint only once the guard finds the weights and the validation loss healthy: the
        validation loss of this step when one was just computed, else the guard's quick one."""
        val_loss = self._last_val[1] if self._last_val and self._last_val[0] == self.step \
            else self.validation.guard_loss()
        self.guard.check_checkpoint(self.model, val_loss, self.step, self._last_ckpt)
        self._save_checkpoint()
        self._last_ckpt = self.step

    def _save_checkpoint(self) -> None:
        checkpointing.save(self.out_dir, self.model, self.optimizers, self.schedulers, self.runtime, self.step,
                           self.guard.state_dict(), self.best.state)


def check_inputs(model: Any, dataset: Any, config: Any, out_dir: Any) -> None:
    """ValueErrors that say what to pass, before anything is built: a model, a Dataset, a TrainConfig, and a run
    folder (a folder or a path that does not exist yet; `run_folder.check_run_folder`)."""
    if model is not None and not isinstance(model, PretrainedModel):
        raise ValueError(f"model must be a vaecore model (vaecore.build_preset(...) or vaecore.load(...)), got "
                         f"{type(model).__name__}")
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset must be a vaecore.Dataset (vaecore.load_dataset('mnist'), or "
                         f"vaecore.Dataset(name, x_train, y_train, x_val, y_val, x_test, y_test)), got "
                         f"{type(dataset).__name__}")
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a vaecore.TrainConfig, got {type(config).__name__}")
    rf.check_run_folder(out_dir)


def train(preset: str, dataset: Dataset, out_dir: str | Path, config: TrainConfig | None = None,
          callbacks: Iterable[Callback] = (), progress: bool = False, **overrides: Any) -> TrainResult:
    """Build the preset for the dataset's image shape and train it (the one-call entry point)."""
    from vaecore.presets import build_preset

    config = config or TrainConfig()
    check_inputs(None, dataset, config, out_dir)
    model = build_preset(preset, data=dataset, seed=config.seed, **overrides)
    return Trainer(model, dataset, config, out_dir, callbacks, progress).fit()

"""Training loop: one optimizer per parameter group (chosen by name, with a per-epoch schedule),
KL warm-up, mixed precision (CUDA: bf16, or fp16 with a GradScaler; CPU: bf16), optional
torch.compile, channels-last and measured CPU convolution kernels (`conv_autotune`), one
validation pass per epoch, keep-best and early stopping, per-epoch sample grids, exact resume, a
divergence stop that keeps the last good checkpoint, callbacks (live monitors, experiment
trackers), and data parallelism over torchrun processes.

A run folder holds:
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
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaecore.components import conv_autotune
from vaecore.config import TrainConfig
from vaecore.data.datasets import Dataset, epoch_permutation
from vaecore.models.base import PretrainedModel
from vaecore.training import distributed
from vaecore.training import run_folder as rf
from vaecore.training.guard import DivergenceGuard, TrainingDiverged
from vaecore.training.optim import (
    build_optimizer,
    build_scheduler,
    load_optimizer_state,
    optimizer_state,
    step_scheduler,
)
from vaecore.training.run_folder import CHECKPOINT, METRICS, read_metrics
from vaecore.training.steps import StepContext, group_step, validation_batch
from vaecore.utils import atomic_write_bytes, atomic_write_json, default_device, seed_everything

Callback = Callable[[dict[str, Any]], None]
BEST = "best"
GUARD_VAL_IMAGES = 500
__all__ = ["CHECKPOINT", "METRICS", "TrainResult", "Trainer", "TrainingDiverged", "read_metrics",
           "train"]


@dataclass
class TrainResult:
    status: str  # "finished" | "stopped" | "diverged"
    step: int
    epoch: int
    message: str = ""


class Trainer:
    """Trains a model on a Dataset into a run folder; thread-safe `stop()` for the app."""

    def __init__(self, model: PretrainedModel, dataset: Dataset, config: TrainConfig, out_dir: str | Path,
                 callbacks: Iterable[Callback] = (), progress: bool = False) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.dist = distributed.setup(config.device)
        config.world_size = self.dist.world_size
        self.device = self.dist.device or default_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if config.conv_autotune and self.device.type == "cpu" and not config.compile:
            conv_autotune.enable(self.model)
        self.dataset = dataset
        self.x_train = dataset.x_train.to(self.device)
        self.x_val = dataset.x_val[: config.val_limit][self.dist.rank::self.dist.world_size].to(self.device)
        self.callbacks = list(callbacks)
        self.progress = progress
        self._stop = threading.Event()
        self._last_ckpt = 0
        self._resumed = False
        self._build_optimizers()
        n = self.x_train.shape[0]
        if n == 0:
            raise ValueError("the training set is empty; check --limit and the dataset")
        self.n_train = n
        self.batch_size = min(config.batch_size, n)
        if self.batch_size % self.dist.world_size:
            raise ValueError(f"batch size {self.batch_size} does not split over {self.dist.world_size} processes; "
                             f"choose a multiple of {self.dist.world_size}")
        self.local_batch = self.batch_size // self.dist.world_size
        self.steps_per_epoch = max(1, n // self.batch_size)
        total = config.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.step = 0
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self._ddp = self._wrap_ddp()
        self._compiled = torch.compile(self.model.loss) if config.compile else None
        self.best: dict[str, Any] = {"val_loss": None, "step": None, "epoch": None, "bad_epochs": 0}
        self._perm: tuple[int, torch.Tensor] | None = None
        self._last_grid = -1
        self._best_pending = False
        self._trackers: list[Any] = []
        self.augment = None
        if config.augment:
            from vaecore.data.transforms import TransformRange
            self.augment = TransformRange(**config.augment)

    # construction from a folder -----------------------------------------------------------
    @classmethod
    def resume(cls, out_dir: str | Path, dataset: Dataset | None = None, callbacks: Iterable[Callback] = (),
               progress: bool = False, **changes: Any) -> Trainer:
        """Re-open a run folder and continue exactly where its last checkpoint left off.

        `changes` may extend the run (e.g. epochs=20, max_steps=None).
        """
        from vaecore.data.datasets import load_dataset
        from vaecore.hub import load_folder

        out_dir = Path(out_dir)
        if not rf.holds_run(out_dir):
            raise FileNotFoundError(f"{out_dir / CHECKPOINT} not found: nothing to resume in {out_dir}")
        recorded = rf.read_train_json(out_dir)
        try:
            tc = TrainConfig.from_dict({**recorded, **changes})
        except ValueError as e:
            raise rf.RunFolderError(f"{out_dir / rf.TRAIN}: {e}") from e
        model = load_folder(out_dir)
        if dataset is None:
            if tc.data.startswith(rf.PYTHON_DATA):
                raise rf.RunFolderError(
                    f"{out_dir} was trained on a Dataset built in Python ({tc.data[len(rf.PYTHON_DATA):]!r}), "
                    "which cannot be reloaded by name; resume it with Trainer.resume(folder, dataset=...)")
            seed = tc.seed if tc.data_seed is None else tc.data_seed
            dataset = load_dataset(tc.data, tc.data_dir, limit=tc.limit, seed=seed)
        trainer = cls(model, dataset, tc, out_dir, callbacks, progress)
        trainer._load_checkpoint()
        return trainer

    def _amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype: on CUDA bf16 where supported (else fp16) for "auto"; on the CPU only an
        explicit "bf16" (fast on CPUs with AMX or AVX-512 BF16), so CPU runs stay exact fp32 by default."""
        amp = self.config.amp
        if self.device.type == "cpu" and amp == "bf16":
            return torch.bfloat16
        if self.device.type != "cuda" or amp == "none":
            return None
        if amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

    # public control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to stop after the current step; it checkpoints first."""
        self._stop.set()

    def add_callback(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    # checkpointing --------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        rng = self._rng_tensors()
        if not self.dist.is_main:
            return
        tensors.update(rng)
        optim, optim_meta = self._optim_state()
        tensors.update(optim)
        meta = {"step": self.step, **optim_meta,
                "guard": self.guard.state_dict() if hasattr(self, "guard") else None,
                "conv_kernels": conv_autotune.choices(self.model)}
        rf.save_model(self.out_dir, self.model, step=self.step)  # first: a checkpoint implies a loadable model
        rf.save_checkpoint(self.out_dir, tensors, meta)

    def _load_checkpoint(self) -> None:
        tensors, meta = rf.load_checkpoint(self.out_dir)
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state, strict=True)
        self._load_optim_state(tensors, meta)
        self.step = int(meta["step"])
        self._resumed = True
        self._last_ckpt = self.step
        self._guard_state = meta.get("guard")
        conv_autotune.load_choices(self.model, meta.get("conv_kernels"))

    # logging ----------------------------------------------------------------------------------
    def _emit(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        record = {"time": time.time(), **record}
        rf.append_metric(self.out_dir, record)
        for cb in self.callbacks:
            cb(record)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss, ELBO (where the model defines one) and reconstruction MSE summed over pixels,
        per example, from one pass over the validation images (each rank its shard, summed over ranks)."""
        was_training = self.model.training
        self.model.eval()
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss·n, mse, elbo, n
        has_elbo = torch.zeros(1, device=self.device)
        ctx = StepContext.evaluation(self.n_train)
        bs = self.config.val_batch_size
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.seed + 1 + self.dist.rank)
            for i in range(0, self.x_val.shape[0], bs):
                x = self._prepare(self.x_val[i:i + bs])
                v = validation_batch(self.model, x, ctx)
                sums[0] += v["loss"].double() * x.shape[0]
                sums[1] += v["mse"].double().sum()
                if "elbo" in v:
                    sums[2] += v["elbo"].double().sum()
                    has_elbo.fill_(1)
                sums[3] += x.shape[0]
        distributed.all_reduce_sum(sums, self.dist)
        distributed.all_reduce_sum(has_elbo, self.dist)
        n = max(float(sums[3]), 1.0)
        out = {"val_loss": float(sums[0]) / n, "val_mse": float(sums[1]) / n}
        if float(has_elbo) > 0:
            out["val_elbo"] = float(sums[2]) / n
        self.model.train(was_training)
        return out

    # parameter groups, optimizers, the step -----------------------------------------------------
    def _build_optimizers(self) -> None:
        self.groups = list(self.model.param_groups())
        names = [g.name for g in self.groups]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"the model's param_groups() must give distinct group names, got {names}")
        self.optimizers = [build_optimizer(self.config, g.params, self.config.lr * g.lr_scale) for g in self.groups]
        self.schedulers = [build_scheduler(self.config, opt) for opt in self.optimizers]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The first parameter group's optimizer (the only one of single-group models)."""
        return self.optimizers[0]

    @property
    def scheduler(self) -> Any | None:
        return self.schedulers[0]

    def _wrap_ddp(self) -> Any | None:
        """DistributedDataParallel over the loss for single-group models on several processes; multi-group
        models average each group's gradients themselves (`group_step`)."""
        if not self.dist.enabled or len(self.groups) > 1:
            return None
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(_LossModule(self.model), device_ids=ids)

    def _context(self, epoch: int) -> StepContext:
        warm = self.config.kl_warmup_steps
        return StepContext(step=self.step, epoch=epoch, total_steps=self.total_steps,
                           steps_per_epoch=self.steps_per_epoch, dataset_size=self.n_train,
                           kl_weight=min(1.0, (self.step + 1) / warm) if warm else 1.0, training=True)

    def _loss(self, x: torch.Tensor, ctx: StepContext) -> Any:
        if self._ddp is not None:
            loss, out = self._ddp(x, ctx)
            out.loss = loss
            return out
        return (self._compiled or self.model.loss)(x, ctx)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def _batch(self, epoch: int, index: int) -> torch.Tensor:
        """This rank's shard of batch `index` of the epoch's permutation."""
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, epoch_permutation(self.n_train, self.config.seed, epoch).to(self.device))
        start = index * self.batch_size + self.dist.rank * self.local_batch
        x = self.x_train[self._perm[1][start:start + self.local_batch]]
        if self.augment is not None:
            from vaecore.data.transforms import apply_affine, random_affine
            x = apply_affine(x, random_affine(x.shape[0], self.augment, device=x.device))
        return self._prepare(x)

    # epochs: schedules, sample grids, the best model, early stopping ------------------------------
    def _end_epoch(self, val: dict[str, float]) -> str | None:
        """After an epoch's validation; returns the early-stopping message when the run should end."""
        epoch = self.step // self.steps_per_epoch
        for sched in self.schedulers:
            step_scheduler(sched, val["val_loss"])
        self._save_grids(epoch)
        b, loss = self.best, val["val_loss"]
        if b["val_loss"] is None or loss < b["val_loss"]:
            self.best = {"val_loss": loss, "step": self.step, "epoch": epoch, "bad_epochs": 0}
            self._best_pending = self.config.keep_best and self.dist.is_main
        else:
            b["bad_epochs"] += 1
        patience = self.config.early_stopping
        if patience and self.best["bad_epochs"] >= patience:
            return (f"stopped early at epoch {epoch}: the validation loss has not improved for {patience} epochs "
                    f"(best {self.best['val_loss']:.4g} at epoch {self.best['epoch']}, kept in {BEST}/)")
        return None

    def _keep_best(self) -> None:
        """best/ after the checkpoint of a better epoch: its weights hard-linked to the model just saved (a later
        save renames a new file into place, so the link keeps these bytes), or written when linking fails."""
        if not self._best_pending:
            return
        self._best_pending = False
        best = self.out_dir / BEST
        best.mkdir(exist_ok=True)
        try:
            tmp = best / f".{rf.WEIGHTS}.link"
            tmp.unlink(missing_ok=True)
            os.link(self.out_dir / rf.WEIGHTS, tmp)
            os.replace(tmp, best / rf.WEIGHTS)
            for name in (rf.CONFIG, rf.CARD):
                data = (self.out_dir / name).read_bytes()
                if not (best / name).is_file() or (best / name).read_bytes() != data:
                    atomic_write_bytes(best / name, data)
        except OSError:
            rf.save_model(best, self.model, step=self.step)
        atomic_write_json(best / "best.json", {k: v for k, v in self.best.items() if k != "bad_epochs"})

    @torch.no_grad()
    def _save_grids(self, epoch: int | None) -> None:
        """Sample and reconstruction grids: samples/epoch_NNNN.png per epoch, samples.png the latest."""
        self._last_grid = self.step
        if not self.config.sample_grids or not self.dist.is_main:
            return
        from vaecore.data.images import make_grid, to_png_bytes

        was_training = self.model.training
        self.model.eval()
        grids: dict[str, Any] = {}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            caps = getattr(self.model, "capabilities", None)
            if caps is None or caps.prior_samples:
                g = torch.Generator(device=self.device).manual_seed(0)
                grids["samples"] = make_grid(self.model.sample(64, generator=g), nrow=8)
            x = self.dataset.x_val[:32].to(self.device)
            if x.shape[0]:
                pairs = torch.stack([x, self.model.reconstruct(x).to(x.dtype)], dim=1).reshape(-1, *x.shape[1:])
                grids["reconstructions"] = make_grid(pairs, nrow=8)
        self.model.train(was_training)
        folder = self.out_dir / "samples"
        for name, grid in grids.items():
            png = to_png_bytes(grid, scale=2)
            if epoch is not None:
                atomic_write_bytes(folder / f"{'epoch' if name == 'samples' else 'recon'}_{epoch:04d}.png", png)
            if name == "samples":
                atomic_write_bytes(self.out_dir / rf.SAMPLES, png)
        for cb in self.callbacks:
            cb({"kind": "images", "step": self.step, "epoch": epoch, **grids})

    def _after_start(self, fresh: bool) -> None:
        """Each rank its own noise stream; trackers on rank 0."""
        if fresh and self.dist.rank:
            torch.manual_seed(self.config.seed + self.dist.rank)
        if self.config.log_to and self.dist.is_main and not self._trackers:
            from vaecore.training.trackers import build_trackers

            self._trackers = build_trackers(self.config.log_to, self.out_dir, self.config.to_dict())
            self.callbacks.extend(self._trackers)

    # the trainer's share of the checkpoint -------------------------------------------------------
    def _rng_tensors(self) -> dict[str, torch.Tensor]:
        """Every rank's RNG states (a collective: all ranks call it), rank 0's under the plain names."""
        out = {}
        kinds = [("cpu", torch.get_rng_state)]
        if self.device.type == "cuda":
            kinds.append(("cuda", lambda: torch.cuda.get_rng_state(self.device)))
        for kind, get in kinds:
            for rank, state in enumerate(distributed.gather_rng_states(get(), self.dist)):
                out[f"rng.{kind}" if rank == 0 else f"rng.{kind}.{rank}"] = state
        return out

    def _optim_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = optimizer_state(self.optimizers, self.schedulers)
        best = {k: v for k, v in self.best.items()}
        return tensors, {**meta, "trainer": best, "world_size": self.dist.world_size}

    def _load_optim_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        world = int(meta.get("world_size", 1))
        if world != self.dist.world_size:
            raise rf.RunFolderError(
                f"{self.out_dir} was trained by {world} process(es) and resumes exactly only with as many; run "
                f"`torchrun --nproc_per_node {world} -m vaecore train --resume …` (this is {self.dist.world_size})")
        load_optimizer_state(self.optimizers, self.schedulers, tensors, meta, self.device)
        self.best = {**self.best, **(meta.get("trainer") or {})}
        suffix = "" if self.dist.rank == 0 else f".{self.dist.rank}"
        torch.set_rng_state(tensors["rng.cpu" + suffix])
        if self.device.type == "cuda" and "rng.cuda" + suffix in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda" + suffix], self.device)

    # the loop ---------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Run until the configured epochs / max steps, a stop request, or a diverging loss.

        The run folder is locked for the whole run: a second writer gets `RunLockedError`; a new run in a
        folder that already holds one gets `RunExistsError` (resume it instead).
        """
        with rf.RunLock(self.out_dir) if self.dist.is_main else contextlib.nullcontext():
            return self._fit()

    def _start(self) -> bool:
        """Holding the lock: refuse to overwrite a run, clear killed writes' temp files, record train.json."""
        fresh = not self._resumed
        main = self.dist.is_main  # the other ranks of a distributed run write nothing
        if main and fresh and rf.holds_run(self.out_dir):
            raise rf.RunExistsError(f"{self.out_dir} already holds a run; resume it (Trainer.resume, --resume) "
                                    "or choose another folder")
        if main:
            rf.clean_temp_files(self.out_dir)
        self.guard = DivergenceGuard(self.config.divergence_factor)
        self.guard.load_state_dict(getattr(self, "_guard_state", None))
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

    def _fit(self) -> TrainResult:
        fresh = self._start()
        self._emit({"kind": "event", "event": "started" if fresh else "resumed", "step": self.step,
                    "total_steps": self.total_steps, "model": self.model.config.preset})
        self.model.train()
        self._after_start(fresh)
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
                kl_weight = ctx.kl_weight
                autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
                            else contextlib.nullcontext())
                with autocast:
                    out = self._loss(x, ctx)
                self.guard.check_step(float(out.loss.detach()), self.step + 1, self._last_ckpt)
                group_step(self.groups, self.optimizers, out, self.config.grad_clip, self.scaler,
                           self.dist if self._ddp is None else None)
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
                                **out.logs, "lr": self.optimizer.param_groups[0]["lr"], "kl_weight": kl_weight,
                                "images_per_s": rate, "eta_s": per_step * (self.total_steps - self.step)})
                    t_last, n_last = now, 0
                end_of_epoch = self.step % self.steps_per_epoch == 0
                early = None
                if end_of_epoch:
                    self.model.on_epoch_end(self._context(epoch))
                if end_of_epoch or self.step == self.total_steps:
                    val = self.evaluate()
                    self._val = (self.step, val["val_loss"])
                    self._emit({"kind": "epoch", "step": self.step, "epoch": self.step / self.steps_per_epoch,
                                **val})
                    if end_of_epoch:
                        early = self._end_epoch(val)
                if end_of_epoch or self.step % self.config.checkpoint_every == 0:
                    self._checkpoint()
                    self._keep_best()
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

    def _checkpoint(self) -> None:
        """Save a checkpoint only once the guard finds the weights and the validation loss healthy."""
        self.guard.check_checkpoint(self.model, self._guard_val_loss(), self.step, self._last_ckpt)
        self._save_checkpoint()
        self._last_ckpt = self.step

    @torch.no_grad()
    def _guard_val_loss(self) -> float | None:
        """This step's validation loss: the epoch's when just computed, else on the first validation images."""
        step, loss = getattr(self, "_val", (None, None))
        if step == self.step:
            return float(loss)
        if self.x_val.shape[0] == 0:
            return None
        was_training = self.model.training
        self.model.eval()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.seed + 1)
            loss = self.model.loss(self.x_val[:GUARD_VAL_IMAGES]).logs["loss"]
        self.model.train(was_training)
        return float(loss)



class _LossModule(torch.nn.Module):
    """The model's loss as a forward, so DistributedDataParallel can wrap it."""

    def __init__(self, model: PretrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, ctx: StepContext) -> tuple[torch.Tensor, Any]:
        out = self.model.loss(x, ctx)
        return out.loss, out

def train(preset: str, dataset: Dataset, out_dir: str | Path, config: TrainConfig | None = None,
          callbacks: Iterable[Callback] = (), progress: bool = False, **overrides: Any) -> TrainResult:
    """Build the preset for the dataset's image shape and train it (the one-call entry point)."""
    from vaecore.presets import build_preset

    config = config or TrainConfig()
    overrides.setdefault("input_shape", dataset.shape)
    overrides.setdefault("dataset", dataset.name)
    model = build_preset(preset, seed=config.seed, **overrides)
    return Trainer(model, dataset, config, out_dir, callbacks, progress).fit()

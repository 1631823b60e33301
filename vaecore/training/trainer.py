"""Training loop: Adam, optional plateau LR and KL warm-up, AMP on CUDA, atomic checkpoints,
exact resume, a NaN stop that keeps the last good checkpoint, and callbacks for live monitors.

A run folder holds:
  config.json, model.safetensors, README.md   the model, loadable by `vaecore.load(run_dir)`
  train.json                                   the TrainConfig
  checkpoint.safetensors                       weights + optimizer + RNG state, for --resume
  metrics.jsonl                                one JSON record per logged step / epoch / event
  samples.png                                  a grid of samples from the latest checkpoint
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaecore.config import TrainConfig
from vaecore.data.datasets import Dataset, epoch_permutation
from vaecore.data.images import save_grid
from vaecore.models.base import PretrainedModel
from vaecore.training import run_folder as rf
from vaecore.training.guard import DivergenceGuard, TrainingDiverged
from vaecore.training.run_folder import CHECKPOINT, METRICS, read_metrics
from vaecore.utils import default_device, seed_everything

Callback = Callable[[dict[str, Any]], None]
GUARD_VAL_IMAGES = 500
__all__ = ["CHECKPOINT", "METRICS", "TrainResult", "Trainer", "TrainingDiverged", "build_model", "read_metrics",
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
        self.device = default_device(config.device)
        self.model = model.to(self.device)
        self.dataset = dataset
        self.x_train = dataset.x_train.to(self.device)
        self.x_val = dataset.x_val[: config.val_limit].to(self.device)
        self.callbacks = list(callbacks)
        self.progress = progress
        self._stop = threading.Event()
        self._last_ckpt = 0
        self._resumed = False
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=config.plateau_factor, patience=config.plateau_patience)
            if config.plateau else None)
        n = self.x_train.shape[0]
        if n == 0:
            raise ValueError("the training set is empty; check --limit and the dataset")
        self.batch_size = min(config.batch_size, n)
        self.steps_per_epoch = max(1, n // self.batch_size)
        total = config.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.step = 0
        self.amp_dtype = self._amp_dtype()
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
        try:
            tc = TrainConfig.from_dict({**rf.read_train_json(out_dir), **changes})
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
        amp = self.config.amp
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
        opt = self.optimizer.state_dict()
        for idx, state in opt["state"].items():
            for name, value in state.items():
                tensors[f"optim.{idx}.{name}"] = torch.as_tensor(value)
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {"step": self.step, "param_groups": opt["param_groups"],
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "guard": self.guard.state_dict() if hasattr(self, "guard") else None}
        rf.save_checkpoint(self.out_dir, tensors, meta)
        rf.save_model(self.out_dir, self.model, step=self.step)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            self.model.eval()
            g = torch.Generator(device=self.device).manual_seed(0)
            save_grid(self.model.sample(64, generator=g), self.out_dir / "samples.png", nrow=8)
            self.model.train()

    def _load_checkpoint(self) -> None:
        tensors, meta = rf.load_checkpoint(self.out_dir)
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state, strict=True)
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = v.to(self.device) if name != "step" else v
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
        if self.scheduler and meta.get("scheduler"):
            self.scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng.cpu"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step = int(meta["step"])
        self._resumed = True
        self._last_ckpt = self.step
        self._guard_state = meta.get("guard")

    # logging ----------------------------------------------------------------------------------
    def _emit(self, record: dict[str, Any]) -> None:
        record = {"time": time.time(), **record}
        rf.append_metric(self.out_dir, record)
        for cb in self.callbacks:
            cb(record)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss, ELBO (stochastic encoders) and MSE summed over pixels, per example."""
        was_training = self.model.training
        self.model.eval()
        out: dict[str, float] = {}
        totals = {"val_loss": 0.0, "val_elbo": 0.0, "val_mse": 0.0}
        n = 0
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.seed + 1)
            for i in range(0, self.x_val.shape[0], 500):
                x = self.x_val[i:i + 500]
                b = x.shape[0]
                totals["val_loss"] += self.model.loss(x).logs["loss"] * b
                if not self.model.config.deterministic:
                    totals["val_elbo"] += float(self.model.elbo(x).sum())
                totals["val_mse"] += float(((self.model.reconstruct(x) - x) ** 2).sum())
                n += b
        for k, v in totals.items():
            out[k] = v / max(n, 1)
        if self.model.config.deterministic:
            out.pop("val_elbo")
        self.model.train(was_training)
        return out

    # the loop ---------------------------------------------------------------------------------
    def _batch(self, epoch: int, index: int) -> torch.Tensor:
        perm = epoch_permutation(self.x_train.shape[0], self.config.seed, epoch).to(self.device)
        idx = perm[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.x_train[idx]
        if self.augment is not None:
            from vaecore.data.transforms import apply_affine, random_affine
            x = apply_affine(x, random_affine(x.shape[0], self.augment, device=x.device))
        return x

    def fit(self) -> TrainResult:
        """Run until the configured epochs / max steps, a stop request, or a diverging loss.

        The run folder is locked for the whole run: a second writer gets `RunLockedError`; a new run in a
        folder that already holds one gets `RunExistsError` (resume it instead).
        """
        with rf.RunLock(self.out_dir):
            return self._fit()

    def _start(self) -> bool:
        """Holding the lock: refuse to overwrite a run, clear killed writes' temp files, record train.json."""
        fresh = not self._resumed
        if fresh and rf.holds_run(self.out_dir):
            raise rf.RunExistsError(f"{self.out_dir} already holds a run; resume it (Trainer.resume, --resume) "
                                    "or choose another folder")
        rf.clean_temp_files(self.out_dir)
        self.guard = DivergenceGuard()
        self.guard.load_state_dict(getattr(self, "_guard_state", None))
        if fresh or getattr(self.dataset, "source", None):
            self.config = self.config.replace(**rf.dataset_record(self.dataset, self.config.seed))
        rf.write_train_json(self.out_dir, self.config.to_dict())
        if fresh:
            seed_everything(self.config.seed)
            (self.out_dir / METRICS).unlink(missing_ok=True)
            self._save_checkpoint()
        else:
            rf.truncate_metrics(self.out_dir, self.step)
        return fresh

    def _fit(self) -> TrainResult:
        fresh = self._start()
        self._emit({"kind": "event", "event": "started" if fresh else "resumed", "step": self.step,
                    "total_steps": self.total_steps, "model": self.model.config.preset})
        self.model.train()
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
                kl_weight = min(1.0, (self.step + 1) / self.config.kl_warmup_steps) \
                    if self.config.kl_warmup_steps else 1.0
                autocast = (torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype
                            else contextlib.nullcontext())
                with autocast:
                    out = self.model.loss(x, kl_weight=kl_weight)
                self.guard.check_step(float(out.loss.detach()), self.step + 1, self._last_ckpt)
                self.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                if self.config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.optimizer.step()
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
                if end_of_epoch or self.step == self.total_steps:
                    val = self.evaluate()
                    self._val = (self.step, val["val_loss"])
                    if self.scheduler is not None and end_of_epoch:
                        self.scheduler.step(val["val_loss"])
                    self._emit({"kind": "epoch", "step": self.step, "epoch": self.step / self.steps_per_epoch,
                                **val})
                if end_of_epoch or self.step % self.config.checkpoint_every == 0:
                    self._checkpoint()
        except TrainingDiverged as e:
            status, message = "diverged", str(e)
        finally:
            if bar is not None:
                bar.close()
        if status != "diverged":
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


def train(preset: str, dataset: Dataset, out_dir: str | Path, config: TrainConfig | None = None,
          callbacks: Iterable[Callback] = (), progress: bool = False, **overrides: Any) -> TrainResult:
    """Build the preset for the dataset's image shape and train it (the one-call entry point)."""
    from vaecore.presets import model_config

    config = config or TrainConfig()
    overrides.setdefault("input_shape", dataset.shape)
    overrides.setdefault("dataset", dataset.name)
    model = build_model(model_config(preset, **overrides).to_dict(), seed=config.seed)
    return Trainer(model, dataset, config, out_dir, callbacks, progress).fit()


def build_model(config: dict[str, Any], seed: int | None = None) -> PretrainedModel:
    """Instantiate the model class that `config["model_type"]` names; `seed` fixes its initial weights."""
    from vaecore.models.base import MODEL_TYPES

    if seed is not None:
        seed_everything(seed)
    kind = config.get("model_type", "vae")
    if kind not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {kind!r}; known: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[kind](config)



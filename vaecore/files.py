"""The file names of a model folder and a run folder: one home, read by everything that writes or reads one.

A model folder (`vaecore.load(folder)`) holds CONFIG and WEIGHTS, and a CARD; a run folder adds what
`vaecore.training.run_folder` describes (its checkpoint, train.json, the metrics log, sample grids, eval.json,
the writer's lock). Post-hoc samplers are saved beside the model as `sampler_files(name)`. A leaf module (it
imports nothing of vaecore), so the models, the hub, the trainer, the samplers, the cards and the app can all
read it; `vaecore.training.run_folder` re-exports these names.
"""

from __future__ import annotations

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
CHECKPOINT = "checkpoint.safetensors"
TRAIN = "train.json"
METRICS = "metrics.jsonl"
SAMPLES = "samples.png"
GMM_SAMPLES = "samples-gmm.png"  # a prior-less model's grid: decoded draws of its fitted GMM (the zoo writes it)
EVAL = "eval.json"
PER_IMAGE = "per_image.safetensors"  # beside eval.json: its per-image values on a recorded set of test images
LOCK = "train.lock"
BEST = "best"  # subfolder: the model of the lowest validation loss so far
BEST_RECORD = "best.json"  # in BEST: when and at what validation loss it was saved
GRIDS = "samples"  # subfolder: the sample and reconstruction grids of each epoch
APP_RUN = "app_run.json"  # the app's settings of a run it started (`vaecore train --settings` reads it)
CATALOG = "catalog.json"  # in checkpoints/: the bundled models and their metadata
RUN_FILES = (CONFIG, WEIGHTS, CHECKPOINT, TRAIN, METRICS, SAMPLES, CARD, EVAL)


def sampler_files(name: str) -> tuple[str, str]:
    """The weights and JSON file names of a post-hoc sampler saved in a model folder."""
    return f"sampler-{name}.safetensors", f"sampler-{name}.json"

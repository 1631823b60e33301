"""Resource limits: every size that a user or a file controls, in one place, each with the environment
variable that raises it.

A request (a config.json, an upload, `Model.sample(n)`, a JSON side file) is checked against these limits
*before* anything is allocated, so no input can make a server allocate more than the sizes below allow.
Each refusal is a `LimitError` (a ValueError) that names the limit, the value asked for and how to raise it.
The limits are read from the environment at every check, so an operator sets them before starting the app
(`VAE_MAX_SAMPLES=200000 streamlit run app.py`) and tests can change them with `monkeypatch.setenv`.
docs/reliability.md lists them with the memory each one bounds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


class LimitError(ValueError):
    """An input asks for more than a resource limit allows; the message says which and how to raise it."""


@dataclass(frozen=True)
class Limit:
    """One bound: `value` is the environment variable `env` when set to a positive integer, else `default`."""

    env: str
    default: int
    unit: str
    why: str

    @property
    def value(self) -> int:
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            number = float(raw)
            value = int(number) if number.is_integer() else 0
        except (ValueError, OverflowError):
            value = 0
        if value < 1:
            raise LimitError(f"environment variable {self.env}={raw!r} must be a positive integer "
                             f"(default {self.default:,})")
        return value

    def check(self, asked: int, what: str) -> int:
        """`asked` when it is within the limit, else a LimitError naming `what`, the limit and its variable."""
        limit = self.value
        if asked > limit:
            raise LimitError(f"{what} is {asked:,} {self.unit}; the limit is {limit:,} {self.unit} ({self.why}): "
                             f"stay within it, or raise it with the environment variable {self.env}")
        return asked


MIB = 2**20

# models (config.json: the picker, `vaecore.load`, the Hub) -----------------------------------------------
IMAGE_CHANNELS = Limit("VAE_MAX_CHANNELS", 4, "channels", "image channels of a model's input_shape")
IMAGE_SIDE = Limit("VAE_MAX_IMAGE_SIDE", 1024, "pixels", "image height or width of a model's input_shape")
IMAGE_VALUES = Limit("VAE_MAX_IMAGE_VALUES", 3 * 512 * 512, "values",
                     "values per image (channels x height x width) of a model's input_shape")
LATENT_DIM = Limit("VAE_MAX_LATENT_DIM", 4096, "dimensions", "latent size of a model")
MODEL_PARAMS = Limit("VAE_MAX_MODEL_PARAMS", 500_000_000, "values",
                     "parameters and buffers of a model, counted before its weights are allocated")
# requests ------------------------------------------------------------------------------------------------
SAMPLES = Limit("VAE_MAX_SAMPLES", 50_000, "samples", "images generated or latents drawn in one call")
TENSOR_BYTES = Limit("VAE_MAX_TENSOR_MB", 512, "MiB", "size of one generated or decoded batch of images")
BATCH_SIZE = Limit("VAE_MAX_BATCH_SIZE", 65_536, "images", "training or validation batch size")
# uploads and data files --------------------------------------------------------------------------------
UPLOAD_IMAGES = Limit("VAE_MAX_UPLOAD_IMAGES", 20_000, "images", "images in one upload")
UPLOAD_MB = Limit("VAE_MAX_UPLOAD_MB", 256, "MiB", "decoded size of one upload's arrays")
ARCHIVE_MEMBERS = Limit("VAE_MAX_NPZ_MEMBERS", 64, "members", "arrays in one .npz archive")
PNG_PIXELS = Limit("VAE_MAX_PNG_PIXELS", 4096 * 4096, "pixels", "pixels of one PNG image before it is resized")
CLASSES = Limit("VAE_MAX_CLASSES", 1000, "classes", "label values: each label must be below this")
# Hub downloads (the picker's Hub source, `vaecore.load("owner/name")`) ---------------------------------
DOWNLOAD_MB = Limit("VAE_MAX_DOWNLOAD_MB", 2048, "MiB", "files downloaded for one Hub repo, all together")
DOWNLOAD_FILES = Limit("VAE_MAX_DOWNLOAD_FILES", 256, "files", "files downloaded for one Hub repo")
# JSON side files (config.json, train.json, eval.json, sampler json, app_run.json) -----------------------
JSON_MB = Limit("VAE_MAX_JSON_MB", 16, "MiB", "size of a JSON file read")
JSON_DEPTH = Limit("VAE_MAX_JSON_DEPTH", 64, "levels", "nesting depth of a JSON file")
STRING_LENGTH = Limit("VAE_MAX_STRING_LENGTH", 4096, "characters", "length of a string setting")

ALL: dict[str, Limit] = {name: value for name, value in globals().items() if isinstance(value, Limit)}
REQUEST_MEMORY_MB = 1024
"""The memory budget per request that these defaults keep the app server under (tests/test_bounds.py measures it)."""


def check_count(n: object, what: str = "n", limit: Limit = SAMPLES, allow_zero: bool = False) -> int:
    """`n` as an int when it is a whole number within `limit`; a ValueError saying what to pass otherwise."""
    import operator

    if isinstance(n, bool):
        raise ValueError(f"{what} must be a whole number, got {n!r}")
    try:
        value = operator.index(n)  # int, numpy integers, 0-d integer tensors; not 1.5, "3", None or nan
    except TypeError:
        raise ValueError(f"{what} must be a whole number (an int), got {n!r} of type {type(n).__name__}") from None
    low = 0 if allow_zero else 1
    if value < low:
        raise ValueError(f"{what} must be >= {low}, got {value}")
    return limit.check(value, what)


def check_input_shape(shape: tuple[int, int, int], what: str = "input_shape") -> None:
    """A model's (C, H, W) within the channel, side and per-image value limits."""
    c, h, w = shape
    IMAGE_CHANNELS.check(c, f"{what} {list(shape)}: channels")
    IMAGE_SIDE.check(max(h, w), f"{what} {list(shape)}: the image side")
    IMAGE_VALUES.check(c * h * w, f"{what} {list(shape)}: values per image")


def check_tensor_bytes(n_values: int, what: str, bytes_per_value: int = 4) -> None:
    """A tensor of `n_values` values within TENSOR_BYTES (in MiB)."""
    TENSOR_BYTES.check(-(-n_values * bytes_per_value // MIB), what)


def table() -> list[tuple[str, int, str, str]]:
    """(environment variable, default, unit, what it bounds) of every limit, for the docs and the app."""
    return [(lim.env, lim.default, lim.unit, lim.why) for lim in ALL.values()]

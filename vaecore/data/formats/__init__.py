"""Dataset formats: one module each, registered at import (`register_format`); `FORMATS` is complete once
this package is imported. Adding a format is one module here plus its name in the import line below."""

from __future__ import annotations

from vaecore.data.formats import celeba, cifar, digits, dsprites, hub, idx, imagefolder, npz, svhn  # noqa: F401
from vaecore.data.formats.registry import (
    FORMATS,
    Format,
    LoadRequest,
    model_defaults,
    register_format,
    resolve_format,
)

__all__ = ["FORMATS", "Format", "LoadRequest", "model_defaults", "register_format", "resolve_format"]

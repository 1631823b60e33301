"""Image sources a page can show: a split of the model's dataset or this session's uploaded images."""

from __future__ import annotations

import streamlit as st
import torch

from explorer.caches import dataset_for
from explorer.uploads import Uploaded
from vaecore import PretrainedModel

SPLITS = ("test", "val", "train")
UPLOADED = "uploaded"
UPLOADS_KEY = "vae_uploads"


def uploaded_images(shape: tuple[int, int, int]) -> Uploaded | None:
    """This session's uploaded images if they fit a model of `shape`, else None."""
    stored = st.session_state.get(UPLOADS_KEY)
    if stored and tuple(stored["shape"]) == tuple(shape):
        return stored["data"]
    return None


def image_sources(model: PretrainedModel) -> list[str]:
    """The image sources a page can offer for a model: its dataset's splits, plus 'uploaded' when there are any."""
    shape = tuple(model.config.input_shape)
    return list(SPLITS) + ([UPLOADED] if uploaded_images(shape) is not None else [])


def source_images(model: PretrainedModel, source: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images, labels or None) of a source: a split of the model's dataset or the uploaded images."""
    if source == UPLOADED:
        up = uploaded_images(tuple(model.config.input_shape))
        if up is None:
            raise ValueError("no uploaded images for this model's image size")
        return up.images, up.labels
    return dataset_for(model).split(source)


def source_token(model: PretrainedModel, source: str) -> str:
    """A key part that changes whenever the images of a source change (uploads get a fresh token)."""
    if source == UPLOADED:
        stored = st.session_state.get(UPLOADS_KEY) or {}
        return f"{UPLOADED}:{stored.get('token', '')}"
    return f"{getattr(model.config, 'dataset', '')}:{source}"

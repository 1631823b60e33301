"""Widgets and image display: grids, the upload panel, the source and image pickers."""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from explorer.caches import sample_images
from explorer.catalog import CARD_METRICS, model_stamp
from explorer.sources import UPLOADS_KEY, image_sources, uploaded_images
from explorer.uploads import LABEL_NAMES, Uploaded, parse_uploads
from vaecore import PretrainedModel
from vaecore.data.images import make_grid, to_png_bytes
from vaecore.evaluation.registry import METRICS

LIVE_REFRESH_S = 2.5


def grid_png(images: torch.Tensor, nrow: int | None = None, scale: int = 2) -> bytes:
    """PNG bytes of a (B, C, H, W) batch in [0, 1] laid out as a grid (small images enlarged)."""
    h = images.shape[-2]
    scale = max(scale, math.ceil(28 * scale / h)) if h < 28 else scale
    return to_png_bytes(make_grid(images, nrow), scale)


def show_images(images: torch.Tensor, caption: str | None = None, nrow: int | None = None, scale: int = 2,
                where: Any = None) -> None:
    """Show a batch of images as one grid."""
    (where or st).image(grid_png(images, nrow, scale), caption=caption)


def show_png_file(path: Path, caption: str | None = None, where: Any = None) -> bool:
    """Show a PNG from disk (read as bytes, so a file being replaced is never half-read); False if missing."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    (where or st).image(data, caption=caption, width="stretch")
    return True


@st.cache_data(show_spinner=False, max_entries=256)
def _sample_png(spec: str, stamp: float, sampler: str, n: int, seed: int, nrow: int) -> bytes:
    return grid_png(sample_images(spec, sampler, n, seed), nrow)


def sample_grid_png(spec: str, sampler: str = "prior", n: int = 36, seed: int = 0, nrow: int = 6) -> bytes:
    """PNG of n generated images (cached per model version, sampler, n and seed)."""
    return _sample_png(spec, model_stamp(spec), sampler, n, seed, nrow)


PICK_MODES = ("By index", "By class", "Random")


def upload_panel(shape: tuple[int, int, int], key: str = "b_upload") -> Uploaded | None:
    """Uploader for .npz/.npy arrays and PNGs; parsed images become the 'uploaded' source of this session.

    The size limit per file is server.maxUploadSize in .streamlit/config.toml. Parse errors are shown,
    not raised. Uploads stay in the session (other pages use them) until forgotten.
    """
    limit = st.get_option("server.maxUploadSize")
    generation = int(st.session_state.get(f"{key}_generation", 0))  # a new uploader (empty) after "Forget"
    uploader_key = key if generation == 0 else f"{key}_{generation}"

    def emptied() -> None:  # the user removed every file: their images go with them
        if not st.session_state.get(uploader_key):
            st.session_state.pop(UPLOADS_KEY, None)

    def forget() -> None:
        st.session_state.pop(UPLOADS_KEY, None)
        st.session_state[f"{key}_generation"] = generation + 1

    files = st.file_uploader(
        "Images: .npz / .npy arrays or PNG files", type=["npz", "npy", "png"], accept_multiple_files=True,
        key=uploader_key, on_change=emptied,
        help=f"Arrays: uint8 0..255 or floats in [0, 1], shaped (N, H, W), (N, H, W, C) or (N, C, H, W) with the "
             f"model's {shape[1]}×{shape[2]} size; keys x/y, images/labels, x_train/y_train/x_test/y_test or one "
             f"array. PNGs are converted to the model's {'colour (RGB)' if shape[0] == 3 else 'grey'} "
             f"{shape[1]}×{shape[2]} images (a note says what was converted); a PNG's label comes from its name: "
             f"{LABEL_NAMES}. Up to {limit} MB per file.")
    invert = st.segmented_control("Invert PNGs", ["auto", "yes", "no"], default="auto", required=True,
                                  key=f"{key}_invert",
                                  help="The models saw light digits on a dark background; 'auto' inverts PNGs "
                                       "whose border is light (dark ink on paper).")
    stored = st.session_state.get(UPLOADS_KEY)
    if files:
        signature = (tuple((f.name, f.size, getattr(f, "file_id", "")) for f in files), tuple(shape), invert)
        if not stored or stored.get("signature") != signature:
            errors: list[str] = []
            try:
                data = parse_uploads([(f.name, f.getvalue()) for f in files], shape,
                                     invert={"auto": None, "yes": True, "no": False}[invert or "auto"], errors=errors)
            except ValueError as e:
                data = None
                if not (errors and str(e).startswith("no usable files")):
                    errors.append(str(e))
            except (MemoryError, Exception) as e:  # noqa: BLE001 - any failure of a user's file becomes a message
                data = None
                errors.append(f"The upload could not be read ({type(e).__name__}: {e}). Upload smaller files, "
                              ".npz/.npy arrays or PNGs of a few thousand pixels across.")
            stored = {"signature": signature, "shape": tuple(shape), "data": data, "errors": errors,
                      "token": secrets.token_hex(6)}
            st.session_state[UPLOADS_KEY] = stored
        for message in stored.get("errors") or []:
            st.error(message)
    current = uploaded_images(shape)
    if current is not None:
        labelled = "with labels" if current.labels is not None else "no labels"
        if current.named_labels:
            labelled += f", {current.named_labels:,} read from file names"
        st.caption(f"{len(current):,} uploaded image{'s' if len(current) != 1 else ''} ({labelled}), "
                   "available as the **uploaded** source on the map, interpolation and transformation pages.")
        if current.notes:
            kind = "colour" if shape[0] == 3 else "grey"
            st.info(f"Converted for this model ({kind}, {shape[1]}×{shape[2]}): "
                    + ", ".join(f"{what}: {n:,} image{'s' if n != 1 else ''}" for what, n in current.notes.items()))
        st.button("Forget uploaded images", key=f"{key}_forget", on_click=forget,
                  help="Drop the images from this session and empty the uploader.")
    elif stored and stored.get("data") is not None and tuple(stored["shape"]) != tuple(shape):
        st.warning(f"The uploaded images are {stored['shape'][1]}×{stored['shape'][2]}; this model takes "
                   f"{shape[1]}×{shape[2]}. Upload them again for this model.")
    return current


def source_picker(model: PretrainedModel, key: str, label: str = "Images from") -> str:
    """A segmented control over `image_sources` (test split by default)."""
    options = image_sources(model)
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    return st.segmented_control(label, options, default="test", required=True, key=key,
                                help="A split of the model's training dataset, or the images you uploaded "
                                     "on the Latent map page.") or "test"


def pick_image(label: str, n: int, labels: torch.Tensor | None, key: str, default: int = 0) -> int:
    """Choose one image of a source of n images: by index, by class (the i-th of a class) or at random."""
    modes = list(PICK_MODES) if labels is not None else [m for m in PICK_MODES if m != "By class"]
    mode = st.segmented_control(label, modes, default=modes[0], required=True, key=f"{key}_mode")
    if mode == "By class" and labels is not None:
        classes = sorted(int(c) for c in torch.unique(labels))
        c1, c2 = st.columns(2)
        cls = c1.selectbox("Class", classes, index=min(default, len(classes) - 1), key=f"{key}_class")
        members = torch.nonzero(labels == cls).flatten()
        k = c2.number_input("Which one", 0, len(members) - 1, value=0, key=f"{key}_k",
                            help=f"{len(members):,} images of class {cls}")
        return int(members[int(k)])
    if mode == "Random":
        if f"{key}_seed" not in st.session_state:
            st.session_state[f"{key}_seed"] = default
        if st.button("New random image", key=f"{key}_again"):
            st.session_state[f"{key}_seed"] = secrets.randbelow(2**31)
        return int(torch.randint(n, (1,), generator=torch.Generator().manual_seed(st.session_state[f"{key}_seed"])))
    return int(st.number_input("Index", 0, n - 1, value=min(default, n - 1), key=f"{key}_index"))


def image_png(x: torch.Tensor, size: int = 112) -> bytes:
    """PNG of one image (C, H, W) enlarged to about `size` pixels across."""
    h = x.shape[-2]
    return to_png_bytes(make_grid(x[None], nrow=1, padding=0), max(1, round(size / h)))


def label_text(labels: torch.Tensor | None, i: int) -> str:
    """'label 7' for labelled sources, '' otherwise."""
    if labels is None or i >= len(labels) or int(labels[i]) < 0:
        return ""
    return f"label {int(labels[i])}"


def card_metrics_markdown(values: dict[str, float | None], spreads: dict[str, float | None] | None = None) -> str:
    """'−log p **1429** ± 8 · MSE **7.58** ± 0.09 · …' with — for undefined metrics (wraps on narrow screens); the
    short labels are the engine's (`METRICS[key].short`). `spreads`: each metric's SE or s.d. (`catalog.card_spreads`);
    without them the line says the numbers carry none."""
    parts = []
    for key in CARD_METRICS:
        label, v = METRICS[key].short, values.get(key)
        whole = key in ("nll-discrete", "fd", "active-units")
        text = "—" if v is None else (f"{v:.0f}" if whole else f"{v:.3g}")
        spread = (spreads or {}).get(key)
        tail = "" if v is None or spread is None else f"&nbsp;±&nbsp;{spread:.0f}" if whole and spread >= 1 \
            else f"&nbsp;±&nbsp;{spread:.2g}"
        parts.append(f"{label}&nbsp;**{text}**{tail}")
    older = spreads is None and any(v is not None for v in values.values())
    return " · ".join(parts) + (" — *older evaluation: no ±*" if older else "")


def model_summary_markdown(model: PretrainedModel) -> str:
    """A short readable description of a loaded model for the sidebar."""
    from explorer.models import facts, family

    c = model.config
    kwargs = ", ".join(f"{k} {v}" for k, v in (getattr(c, "likelihood_kwargs", None) or {}).items())
    params = sum(p.numel() for p in model.parameters())
    f = facts(model)
    lines = [f"**{c.preset}** · {family(model)} · {c.likelihood}" + (f" ({kwargs})" if kwargs else ""),
             f"latent {f.latent_dim} · {getattr(c, 'arch', '?')} · {params / 1e6:.2f} M parameters · "
             f"trained on {getattr(c, 'dataset', '?')}"]
    if not f.elbo:
        lines.append("no ELBO / likelihood")
    return "  \n".join(lines)

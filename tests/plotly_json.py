"""Reading Plotly figure JSON in the app tests."""

from __future__ import annotations

import base64

import numpy as np


def values(v: object) -> np.ndarray:
    """A Plotly JSON array: a plain list or a base64 typed array {"dtype", "bdata", "shape"}."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        shape = v.get("shape")
        return a.reshape([int(d) for d in str(shape).split(",")]) if shape else a
    return np.asarray(v)

"""Procedural dSprites: the exact factor grid of DeepMind's dSprites (Matthey et al. 2017), rendered here,
deterministically, so disentanglement work runs offline.

The grid (as in the dSprites README): latents `color, shape, scale, orientation, posX, posY` with sizes
`[1, 3, 6, 40, 32, 32]` — colour white (value 1); shapes square, ellipse, heart (values 1, 2, 3);
scale `linspace(0.5, 1, 6)`; orientation `linspace(0, 2π, 40)` (so the first and last orientation draw
the same image); posX, posY `linspace(0, 1, 32)` — 737,280 images of 64 × 64, in row-major order of
the classes (posY varies fastest), binary (stored 0 / 255).

Rendering (ours; the shapes are not pixel-identical to DeepMind's files): each sprite is drawn on a
32 × 32 patch around its centre by 4 × 4 supersampling of the shape's inside test (rotated by the
orientation, counter-clockwise with y up), a pixel set when at least half its samples are inside. At
scale 1 the square's half-side is 8 px, the ellipse's semi-axes 10 × 5 px, the heart
((x² + y² − 1)³ ≤ x² y³) about 8.7 px wide from its centre. posX class i puts the sprite centre at column
16 + i (pixel-edge coordinates, columns grow to the right), posY class j at row 16 + j (rows grow
downwards), so positions move the sprite one pixel per class and every sprite stays inside the image.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["GENERATOR_VERSION", "NAMES", "SHAPES", "SIZES", "factor_values", "grid_classes", "n_images", "render"]

GENERATOR_VERSION = 1
NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
SIZES = (1, 3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
IMAGE = 64
PATCH = 32
UNIT = 8.0  # pixels per shape unit at scale 1
SUPERSAMPLE = 4


def n_images() -> int:
    """Images in the grid (737,280)."""
    return int(np.prod(SIZES))


def factor_values() -> tuple[np.ndarray, ...]:
    """The value of each class of each factor, as the dSprites README gives them."""
    _, shapes, scales, angles, xs, ys = SIZES
    return (np.array([1.0]), np.arange(1.0, shapes + 1), np.linspace(0.5, 1.0, scales),
            np.linspace(0.0, 2 * np.pi, angles), np.linspace(0.0, 1.0, xs), np.linspace(0.0, 1.0, ys))


def grid_classes(rows: np.ndarray) -> np.ndarray:
    """(N, 6) classes of grid rows."""
    return np.stack(np.unravel_index(np.asarray(rows, dtype=np.int64), SIZES), axis=1).astype(np.int64)


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v) in shape units (y up, centred) are inside shape `shape`."""
    if shape == 0:
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == 1:
        return (u / 1.25) ** 2 + (v / 0.625) ** 2 <= 1.0
    x, y = u / 0.95, v / 0.95 + 0.12
    return (x * x + y * y - 1.0) ** 3 - x * x * y ** 3 <= 0.0


@functools.lru_cache(maxsize=2)
def _masks(sizes: tuple[int, ...]) -> np.ndarray:
    """(3, 6, 40, 32, 32) bool: every shape × scale × orientation drawn on its patch."""
    offsets = (np.arange(PATCH * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - PATCH / 2  # sample coordinates, px
    xs, ys = np.meshgrid(offsets, -offsets)  # x right, y up
    _, _, scales, angles, _, _ = factor_values()
    out = np.zeros((sizes[1], sizes[2], sizes[3], PATCH, PATCH), dtype=bool)
    for s in range(sizes[1]):
        for k, scale in enumerate(scales):
            for a, angle in enumerate(angles):
                c, sn = np.cos(angle), np.sin(angle)
                u = (c * xs + sn * ys) / (scale * UNIT)
                v = (-sn * xs + c * ys) / (scale * UNIT)
                cover = _inside(s, u, v).reshape(PATCH, SUPERSAMPLE, PATCH, SUPERSAMPLE).mean(axis=(1, 3))
                out[s, k, a] = cover >= 0.5
    return out


def render(start: int, stop: int) -> np.ndarray:
    """Grid rows [start, stop) as uint8 (k, 1, 64, 64), 0 or 255."""
    if not 0 <= start <= stop <= n_images():
        raise ValueError(f"dSprites rows must lie in [0, {n_images()}], got [{start}, {stop})")
    if max(SIZES[4], SIZES[5]) > IMAGE - PATCH:
        raise ValueError(f"at most {IMAGE - PATCH} positions per axis fit the {IMAGE}x{IMAGE} image")
    masks = _masks(SIZES)
    out = np.zeros((stop - start, 1, IMAGE, IMAGE), dtype=np.uint8)
    classes = grid_classes(np.arange(start, stop))
    for k, (_, shape, scale, angle, px, py) in enumerate(classes):
        out[k, 0, py:py + PATCH, px:px + PATCH] = masks[shape, scale, angle]
    out *= np.uint8(255)
    return out

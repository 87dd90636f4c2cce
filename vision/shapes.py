"""Rendered shapes: a built-in image classification problem that needs no download.

`render` draws one shape (circle, ring, square, triangle, star or cross) with random colours,
background (solid or a linear gradient), scale, position, rotation, stroke width, blur and
Gaussian pixel noise. The classes differ only in outline, so a small CNN learns them from scratch
at 64-96 px, yet the nuisance variation keeps the task from being solved by one pixel or colour.

Each image is a pure function of its own generator: `vision.data.write_shapes` seeds one per
(seed, shape, index), so an image never depends on how many others are drawn alongside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

_VAL_SHARE = 0.2  # write_images(split=True): the last fifth of each class is validation
_SUPERSAMPLE = 3  # ImageDraw does not antialias; drawing 3x larger and shrinking smooths edges
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 brightness of an RGB colour
_MIN_CONTRAST = 60.0  # least brightness difference (of 255) between shape and background


def _polygon(
    cx: float, cy: float, radii: np.ndarray, angles: np.ndarray
) -> list[tuple[float, float]]:
    return [(cx + r * np.cos(a), cy + r * np.sin(a)) for r, a in zip(radii, angles, strict=True)]


def _cross(cx: float, cy: float, r: float, w: float, turn: float) -> list[tuple[float, float]]:
    """A plus sign with arms 2w wide, rotated by `turn`; its arm corners lie on radius r."""
    a = float(np.sqrt(r * r - w * w))  # arm length, so the corners (w, a) stay inside r
    outline = [(w, a), (w, w), (a, w), (a, -w), (w, -w), (w, -a)]
    outline += [(-w, -a), (-w, -w), (-a, -w), (-a, w), (-w, w), (-w, a)]
    c, s = np.cos(turn), np.sin(turn)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in outline]


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A (size, size, 3) float background, solid or a linear gradient; and its end colours."""
    first = rng.uniform(0, 255, 3)
    if rng.random() < 0.5:
        return np.full((size, size, 3), first, np.float32), [first]
    second = rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = xs * np.cos(angle) + ys * np.sin(angle)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    return (first + t[..., None] * (second - first)).astype(np.float32), [first, second]


def _shape_colour(rng: np.random.Generator, backgrounds: list[np.ndarray]) -> np.ndarray:
    """A colour whose brightness differs from every background colour's, so the outline shows.

    Brightness, not hue: a shape differing from its background in hue alone is all but invisible
    to a small network once noise is added (and to a colour-blind reader of the contact sheet).
    """
    candidates = rng.uniform(0, 255, (32, 3))
    gaps = np.min([np.abs((candidates - bg) @ _LUMA) for bg in backgrounds], axis=0)
    # The first that is far enough; rarely none is (a mid-grey gradient leaves little room),
    # and then the farthest of them will do.
    good = np.flatnonzero(gaps >= _MIN_CONTRAST)
    return candidates[good[0] if good.size else int(np.argmax(gaps))]


def render(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image of `shape`, `size` x `size` pixels, drawn with random nuisance variation."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    background, ends = _background(rng, size)
    colour = _shape_colour(rng, ends).astype(np.float32)
    # The shape is drawn as a mask 3x larger and shrunk: its edge pixels get partial coverage.
    big = size * _SUPERSAMPLE
    mask = Image.new("L", (big, big))
    draw, fill = ImageDraw.Draw(mask), 255

    # Every shape fits in a circle of radius r, so any centre at least r from the edges fits.
    r = big * rng.uniform(0.25, 0.70) / 2
    cx, cy = rng.uniform(r, big - r, 2)
    turn = rng.uniform(0, 2 * np.pi)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "ring":
        # At most a third of the radius, so the hole always shows (unlike a filled circle).
        width = max(2, round(r * rng.uniform(0.15, 0.33)))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=width)
    elif shape == "square":
        angles = turn + np.arange(4) * np.pi / 2
        draw.polygon(_polygon(cx, cy, np.full(4, r), angles), fill=fill)
    elif shape == "triangle":
        angles = turn + np.arange(3) * 2 * np.pi / 3
        draw.polygon(_polygon(cx, cy, np.full(3, r), angles), fill=fill)
    elif shape == "star":
        radii = np.tile([r, r * rng.uniform(0.38, 0.5)], 5)
        angles = turn + np.arange(10) * np.pi / 5
        draw.polygon(_polygon(cx, cy, radii, angles), fill=fill)
    else:  # cross: a plus sign, arms 0.36-0.64 of the radius wide
        draw.polygon(_cross(cx, cy, r, r * rng.uniform(0.18, 0.32), turn), fill=fill)

    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), np.float32)[..., None]
    pixels = background + (colour - background) * (alpha / 255)
    image = Image.fromarray(pixels.round().astype(np.uint8), "RGB")
    if rng.random() < 0.3:  # slightly out of focus, as photos often are
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    sigma = rng.uniform(0, 20)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, sigma, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")


def write_images(
    folder: Path,
    *,
    per_class: int = 120,
    size: int = 96,
    seed: int = 42,
    classes: Sequence[str] = SHAPES,
    imbalance: float = 1.0,
    split: bool = False,
) -> None:
    """Render the dataset into `folder` as `<class>/<class>_<i:04d>.png`, a third as `.jpg`.

    With `split`, the last fifth of each class goes under `val/`, the rest under `train/`.
    `imbalance` > 1 gives the last class per_class / imbalance images. Arguments are checked
    before anything is written; `vision.data.write_shapes` adds the all-or-nothing folder.
    """
    unknown = [name for name in classes if name not in SHAPES]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must be 2+ distinct names of {SHAPES}, got {list(classes)}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if imbalance < 1.0:
        raise ValueError(f"imbalance must be at least 1, got {imbalance}")
    counts = [per_class] * (len(classes) - 1) + [round(per_class / imbalance)]
    if min(counts) < 2:
        raise ValueError(f"every class needs at least 2 images, got counts {counts}")

    bar = tqdm(total=sum(counts), desc=f"writing {folder.name}", unit="img", disable=None, delay=1)
    with bar:
        for name, n in zip(classes, counts, strict=True):
            n_val = max(1, round(_VAL_SHARE * n))
            for i in range(n):
                # One generator per image: image i is the same whatever else is drawn.
                rng = np.random.default_rng([seed, SHAPES.index(name), i])
                image = render(name, size, rng)
                part = ("val" if i >= n - n_val else "train") if split else ""
                (folder / part / name).mkdir(parents=True, exist_ok=True)
                path = folder / part / name / f"{name}_{i:04d}"
                if i % 3 == 2:  # a third as JPEG, so that both decoders are exercised
                    quality = int(rng.integers(85, 96))
                    image.save(path.with_suffix(".jpg"), "JPEG", quality=quality)
                else:
                    image.save(path.with_suffix(".png"), "PNG")
                bar.update()

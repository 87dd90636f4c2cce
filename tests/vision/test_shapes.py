"""The shape renderer: one image per generator, of the requested size, that shows its shape.

Files and layout are `vision.data.write_shapes`'s business (tests/vision/test_data.py); here
only the pixels: deterministic, varied, and different from shape to shape.
"""

from __future__ import annotations

import numpy as np
import pytest

from vision.shapes import SHAPES, render


def pixels(shape: str, seed: int, size: int = 48) -> np.ndarray:
    return np.asarray(render(shape, size, np.random.default_rng(seed)))


@pytest.mark.parametrize("shape", SHAPES)
def test_render_is_an_rgb_image_of_the_size_asked(shape: str) -> None:
    image = render(shape, 40, np.random.default_rng(0))
    assert (image.size, image.mode) == ((40, 40), "RGB")


@pytest.mark.parametrize("shape", SHAPES)
def test_render_depends_only_on_the_generator(shape: str) -> None:
    assert np.array_equal(pixels(shape, 1), pixels(shape, 1))
    assert not np.array_equal(pixels(shape, 1), pixels(shape, 2))


def test_the_shape_decides_the_picture() -> None:
    # Same generator state, so the same colours, size and place: only the outline differs.
    images = {shape: pixels(shape, 5).astype(int) for shape in SHAPES}
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert np.abs(images[a] - images[b]).mean() > 1.0, (a, b)


def test_images_vary_in_colour_and_brightness() -> None:
    means = np.array([pixels("circle", seed).mean(axis=(0, 1)) for seed in range(30)])
    assert means.std(axis=0).min() > 20  # per channel: not one palette for every image


def test_render_refuses_an_unknown_shape() -> None:
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        render("hexagon", 32, np.random.default_rng(0))

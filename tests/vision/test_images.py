"""Image decoding, preprocessing and image statistics: the pure functions every vision path
(training, evaluation, the API, the dashboard) shares.

Every format and pixel mode a client may send must come out as upright 8-bit RGB [3, H, W];
every unusable body must be refused with an `ImageError` whose message names the problem, a
decompression bomb from its header alone. Images are tiny, so the file runs in about a second.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterable
from functools import cache
from itertools import repeat

import numpy as np
import pytest
import torch
from PIL import Image

import vision.images
from tests.vision.conftest import EPS, broken_exif, encode, noise_image
from vision.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_PIXELS,
    MIN_SIDE,
    STAT_NAMES,
    ImageError,
    Preprocessing,
    decode,
    image_stats,
    image_stats_many,
    peek_size,
    stats_pixels,
)

EXIF_ORIENTATION = 0x0112
RED = (255, 0, 0)


def as_hwc(image: torch.Tensor) -> np.ndarray:
    """A decoded tensor [3, H, W] as the numpy [H, W, 3] PIL would give."""
    assert image.ndim == 3 and image.shape[0] == 3, image.shape
    return image.permute(1, 2, 0).numpy()


def png(width: int, height: int, rows: Iterable[bytes], bit_depth: int, colour: int) -> bytes:
    """A PNG written by hand from its raw scanlines (`colour`: 0 grey, 2 RGB): PIL cannot write
    a 48-bit RGB one, and writes a 400-megapixel one in seconds."""
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(b"\x00" + row) for row in rows) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def png_16bit_rgb(array: np.ndarray) -> bytes:
    height, width, _ = array.shape
    return png(width, height, (row.astype(">u2").tobytes() for row in array), 16, 2)


@cache
def bomb(fmt: str, width: int, height: int) -> bytes:
    """A valid image of zeros: tens of kB that would unpack to width x height pixels."""
    if fmt == "PNG":  # 1-bit greyscale
        return png(width, height, repeat(bytes(-(-width // 8)), height), 1, 0)
    mode, options = {"GIF": ("P", {}), "JPEG": ("L", {}),
                     "WEBP": ("L", {"lossless": True})}[fmt]  # fmt: skip
    return encode(Image.new(mode, (width, height)), fmt, **options)


def test_the_hand_written_pngs_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    small = bomb("PNG", 40, 30)
    with Image.open(io.BytesIO(small)) as im:
        assert (im.size, im.mode) == ((40, 30), "1")
        assert np.asarray(im.convert("L")).max() == 0
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL's own bomb check, off
    with Image.open(io.BytesIO(bomb("PNG", 20_000, 20_000))) as im:
        assert im.size == (20_000, 20_000)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel data is decompressed (torchvision's or PIL's decoder)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the image was decoded; it should be refused from its header")

    monkeypatch.setattr(vision.images, "decode_image", refuse)
    monkeypatch.setattr(vision.images, "_decode_with_pil", refuse)


# -- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "lossless", "decoder"),
    [
        ("JPEG", {"quality": 95}, False, "torchvision"),
        ("PNG", {}, True, "torchvision"),
        ("WEBP", {"lossless": True}, True, "torchvision"),
        ("GIF", {}, False, "PIL"),  # first frame only: see decode
        ("BMP", {}, True, "PIL"),
        ("TIFF", {}, True, "PIL"),
    ],
)
def test_each_format_decodes_to_uint8_rgb_chw(
    monkeypatch: pytest.MonkeyPatch, fmt: str, options: dict, lossless: bool, decoder: str
) -> None:
    calls: list[str] = []
    real_tv, real_pil = vision.images.decode_image, vision.images._decode_with_pil

    def tv(*args, **kwargs):
        calls.append("torchvision")
        return real_tv(*args, **kwargs)

    def pil(*args, **kwargs):
        calls.append("PIL")
        return real_pil(*args, **kwargs)

    monkeypatch.setattr(vision.images, "decode_image", tv)
    monkeypatch.setattr(vision.images, "_decode_with_pil", pil)
    source = noise_image(64, 48)
    data = encode(source, fmt, **options)
    image = decode(data)
    assert image.dtype == torch.uint8
    assert tuple(image.shape) == (3, 48, 64)
    assert calls == [decoder]
    if lossless:
        np.testing.assert_array_equal(as_hwc(image), np.asarray(source))
    else:  # lossy (JPEG) or palette-quantised (GIF): what PIL reads from the same bytes
        reference = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
        assert np.abs(as_hwc(image).astype(int) - reference).mean() < 1.0


def test_a_smooth_jpeg_decodes_close_to_its_source() -> None:
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    source = np.stack([np.tile(ramp, (48, 1)), np.tile(ramp[::-1], (48, 1)),
                       np.full((48, 64), 100, np.uint8)], axis=-1)  # fmt: skip
    image = decode(encode(Image.fromarray(source), "JPEG", quality=95))
    assert np.abs(as_hwc(image).astype(int) - source.astype(int)).max() <= 8


# -- pixel modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("picture", "fmt", "expected"),
    [
        (Image.new("L", (16, 12), 77), "PNG", (77, 77, 77)),
        (Image.new("LA", (16, 12), (200, 255)), "PNG", (200, 200, 200)),
        (Image.new("1", (16, 12), 1), "PNG", (255, 255, 255)),
        (Image.new("RGBA", (16, 12), (10, 20, 30, 255)), "PNG", (10, 20, 30)),
        (Image.new("RGBA", (16, 12), (10, 20, 30, 128)), "WEBP", None),
        (Image.new("L", (16, 12), 77), "JPEG", (77, 77, 77)),
        (Image.new("L", (16, 12), 77), "TIFF", (77, 77, 77)),
        (Image.new("RGBA", (16, 12), (10, 20, 30, 255)), "TIFF", (10, 20, 30)),
        (Image.new("L", (16, 12), 77), "BMP", (77, 77, 77)),
    ],
    ids=["L-png", "LA-png", "1bit-png", "RGBA-png", "RGBA-webp", "L-jpeg", "L-tiff",
         "RGBA-tiff", "L-bmp"],
)  # fmt: skip
def test_greyscale_and_alpha_modes_become_rgb(picture: Image.Image, fmt: str, expected) -> None:
    image = decode(encode(picture, fmt))
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 12, 16)
    if expected is not None:
        pixels = as_hwc(image).reshape(-1, 3).astype(int)
        assert np.abs(pixels - np.array(expected)).max() <= 2, pixels[0]


def test_palette_image_becomes_its_palette_colours() -> None:
    picture = Image.new("P", (16, 12), 0)
    picture.putpalette([10, 20, 30, 200, 100, 50] + [0, 0, 0] * 254)
    picture.paste(1, (8, 0, 16, 12))  # the right half uses the second palette entry
    for fmt in ("PNG", "GIF", "BMP", "TIFF"):
        pixels = as_hwc(decode(encode(picture, fmt)))
        assert pixels[0, 0].tolist() == [10, 20, 30], fmt
        assert pixels[0, 15].tolist() == [200, 100, 50], fmt


def test_cmyk_jpeg_becomes_rgb_with_the_right_colours() -> None:
    colours = np.zeros((16, 32, 3), np.uint8)
    colours[:, :16] = RED
    colours[:, 16:] = (0, 0, 255)
    data = encode(Image.fromarray(colours).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    pixels = as_hwc(decode(data)).astype(int)
    assert pixels.shape == (16, 32, 3)
    assert np.abs(pixels[8, 4] - RED).max() <= 8
    assert np.abs(pixels[8, 28] - (0, 0, 255)).max() <= 8


def test_16_bit_greyscale_png_is_scaled_to_8_bits() -> None:
    values = np.full((12, 16), 65535, np.uint16)
    values[:, 8:] = 32768
    values[0, :4] = (0, 255, 256, 511)
    picture = Image.frombytes("I;16", (16, 12), values.astype("<u2").tobytes())
    data = encode(picture, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    image = decode(data)
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 12, 16)
    pixels = as_hwc(image)
    assert (pixels[:, :, 0] == pixels[:, :, 1]).all() and (pixels[:, :, 1] == pixels[:, :, 2]).all()
    assert pixels[5, 0, 0] == 255  # 65535 -> 255
    assert pixels[5, 12, 0] == 128  # 32768 -> 128
    assert pixels[0, :4, 0].tolist() == [0, 0, 1, 1]  # the top 8 bits


def test_16_bit_rgb_png_is_scaled_to_8_bits() -> None:
    values = np.zeros((12, 16, 3), np.uint16)
    values[..., 0], values[..., 1], values[..., 2] = 65535, 32768, 255
    image = decode(png_16bit_rgb(values))
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 12, 16)
    assert image[:, 6, 6].tolist() == [255, 128, 0]


def test_16_bit_tiff_is_scaled_to_8_bits() -> None:
    values = np.full((12, 16), 65535, np.uint16)
    values[:6] = 32768
    image = decode(encode(Image.fromarray(values), "TIFF"))  # PIL's path
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 12, 16)
    assert image[:, 0, 0].tolist() == [128, 128, 128]
    assert image[:, 11, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        (np.array([[0, 70_000], [1 << 20, 2**31 - 1]], np.int32), "I"),  # >> 8 wrapped these
        (np.array([[0.0, 0.5], [1.0, 300.0]], np.float32), "F"),  # convert("RGB") clipped these
    ],
    ids=["int32", "float32"],
)  # fmt: skip
def test_32_bit_tiffs_are_refused_naming_the_mode(values: np.ndarray, mode: str) -> None:
    data = encode(Image.fromarray(np.tile(values, (8, 8))), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == mode
    with pytest.raises(ImageError, match=f"unsupported TIFF pixel format: mode '{mode}'"):
        decode(data)


# -- EXIF orientation --------------------------------------------------------------------------


def marked(width: int = 60, height: int = 40) -> Image.Image:
    """Black, with a red square in the stored top-left corner."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:10, :10] = RED
    return Image.fromarray(pixels)


def with_orientation(picture: Image.Image, fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    options = {"quality": 95} if fmt == "JPEG" else {}
    data = encode(picture, fmt, exif=exif.tobytes(), **options)
    assert Image.open(io.BytesIO(data)).getexif().get(EXIF_ORIENTATION) == orientation
    return data


def is_red(pixel: np.ndarray) -> bool:
    return pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60


# Where the stored top-left corner ends up once the image is shown upright: (row, column) of
# the decoded [H, W] image, H = 60 and W = 40 for a 90° turn.
@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (40, 60), (2, 2)),  # as stored
        (3, (40, 60), (-3, -3)),  # 180°
        (6, (60, 40), (2, -3)),  # 90° clockwise: top-left -> top-right
        (8, (60, 40), (-3, 2)),  # 90° anticlockwise: top-left -> bottom-left
    ],
)
def test_exif_orientation_of_a_jpeg_is_applied(orientation: int, size, corner) -> None:
    image = decode(with_orientation(marked(), "JPEG", orientation))
    assert tuple(image.shape[1:]) == size
    pixels = as_hwc(image)
    assert is_red(pixels[corner]), pixels[corner]
    assert not is_red(pixels[2, 2]) or corner == (2, 2)


@pytest.mark.parametrize(
    "fmt",
    [
        "PNG",
        "TIFF",
        pytest.param(
            "WEBP",
        ),
    ],
)
def test_exif_orientation_is_applied_in_other_formats(fmt: str) -> None:
    image = decode(with_orientation(marked(), fmt, 6))
    assert tuple(image.shape[1:]) == (60, 40)
    assert is_red(as_hwc(image)[2, -3])


@pytest.mark.parametrize("fmt", ["WEBP", "animated-WEBP"])  # torchvision's path, then PIL's
def test_an_exif_block_that_does_not_parse_counts_as_none(fmt: str) -> None:
    """PIL raises SyntaxError reading it (a 500 from the API once); the pixels are intact, and
    torchvision already decodes a JPEG with broken EXIF as if it had none, so WebP does too."""
    data = broken_exif(fmt)
    with Image.open(io.BytesIO(data)) as im, pytest.raises(SyntaxError, match="not a TIFF"):
        assert getattr(im, "is_animated", False) == (fmt == "animated-WEBP")
        im.getexif()
    image = decode(data)
    assert tuple(image.shape) == (3, 24, 32) and is_red(as_hwc(image)[5, 5])


# -- animated images ---------------------------------------------------------------------------


def animated(fmt: str, frames: int = 3) -> bytes:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    pictures = [Image.new("RGB", (32, 24), colours[i % 4]) for i in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format=fmt, save_all=True, append_images=pictures[1:])
    return buffer.getvalue()


def test_an_animated_gif_decodes_to_its_first_frame() -> None:
    image = decode(animated("GIF"))
    assert tuple(image.shape) == (3, 24, 32)
    assert is_red(as_hwc(image)[5, 5])


def test_an_animated_png_decodes_to_its_first_frame() -> None:
    image = decode(animated("PNG"))
    assert tuple(image.shape) == (3, 24, 32)
    assert is_red(as_hwc(image)[5, 5])


# -- refusals ----------------------------------------------------------------------------------


def truncated(fmt: str) -> bytes:
    data = encode(noise_image(64, 48), fmt)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "empty"),
        (b"hello, this is plain text and certainly no picture\n", "not an image"),
        (b"%PDF-1.7\n" + bytes(200), "not an image"),
        (truncated("JPEG"), "truncated"),
        (truncated("PNG"), "truncated"),
        pytest.param(
            truncated("WEBP"), "truncated",
        ),
        (encode(noise_image(64, 48), "JPEG")[:200], "truncated"),  # cut inside the header
        (truncated("TIFF"), "truncated"),
        (encode(Image.new("RGB", (1, 1)), "PNG"), "too small"),
        (encode(Image.new("RGB", (1, 1)), "JPEG"), "too small"),
        (encode(Image.new("RGB", (200, MIN_SIDE - 1)), "PNG"), "too small"),
        # 40 MP would pass, but resizing its short side to 256 px would need a 123 GB tensor.
        (encode(Image.new("1", (5_000, 20)), "PNG"), "too elongated"),
    ],
    ids=["empty", "text", "pdf", "truncated-jpeg", "truncated-png", "truncated-webp",
         "jpeg-header-cut", "truncated-tiff", "1x1-png", "1x1-jpeg", "thin", "elongated"],
)  # fmt: skip
def test_unusable_bytes_are_refused_with_a_message_naming_the_problem(
    data: bytes, expected: str
) -> None:
    with pytest.raises(ImageError) as caught:
        decode(data)
    message = str(caught.value)
    assert expected in message.lower(), message
    assert "/csrc/" not in message and "Traceback" not in message


def test_eps_is_refused_without_reaching_ghostscript(monkeypatch: pytest.MonkeyPatch) -> None:
    """PIL's EPS plugin runs Ghostscript on the bytes; decode must never even try that plugin."""
    from PIL import EpsImagePlugin

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the EPS plugin was tried")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", forbidden)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbidden)
    with pytest.raises(ImageError, match=r"no format this service reads \(JPEG, PNG, WebP"):
        decode(EPS)


def test_the_not_an_image_message_quotes_no_python_internals() -> None:
    with pytest.raises(ImageError) as caught:
        decode(b"plain text, no picture")
    assert "BytesIO" not in str(caught.value) and " at 0x" not in str(caught.value)


def test_a_truncated_jpeg_names_the_format() -> None:
    with pytest.raises(ImageError, match=r"(corrupt|truncated).*JPEG|JPEG.*(corrupt|truncated)"):
        decode(truncated("JPEG"))


def test_the_smallest_accepted_side_is_min_side() -> None:
    smallest = decode(encode(noise_image(MIN_SIDE, MIN_SIDE), "PNG"))
    assert tuple(smallest.shape) == (3, MIN_SIDE, MIN_SIDE)
    with pytest.raises(ImageError, match="too small: 16x16"):
        decode(encode(noise_image(16, 16), "PNG"), min_side=17)


@pytest.mark.usefixtures("no_decoding")
@pytest.mark.parametrize(
    ("fmt", "width", "height", "max_pixels"),
    [
        ("PNG", 20_000, 20_000, MAX_PIXELS),  # above PIL's own bomb limit too
        ("PNG", 7_000, 6_000, MAX_PIXELS),  # above this service's limit only
        ("GIF", 1_200, 1_000, 1_000_000),
        ("JPEG", 1_200, 1_000, 1_000_000),
        ("WEBP", 1_200, 1_000, 1_000_000),
    ],
)
def test_a_decompression_bomb_is_refused_from_its_header(
    fmt: str, width: int, height: int, max_pixels: int
) -> None:
    data = bomb(fmt, width, height)
    assert len(data) < 100_000 and width * height > max_pixels
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large") as caught:
        decode(data, max_pixels=max_pixels)
    assert time.perf_counter() - start < 0.5
    message = str(caught.value)
    assert f"{width * height:,}" in message or str(width * height) in message, message


@pytest.mark.usefixtures("no_decoding")
def test_max_pixels_is_checked_before_decoding() -> None:
    with pytest.raises(ImageError, match=r"too large: 64x48 = 3,072 pixels.*limit of 1,000"):
        decode(encode(noise_image(64, 48), "JPEG"), max_pixels=1000)
    with pytest.raises(ImageError, match="too large"):
        decode(encode(noise_image(64, 48), "BMP"), max_pixels=1000)


def test_max_pixels_is_inclusive() -> None:
    assert decode(encode(noise_image(64, 48), "PNG"), max_pixels=64 * 48).shape == (3, 48, 64)


# -- preprocessing -----------------------------------------------------------------------------


def test_for_size_follows_torchvisions_resize_then_crop_recipe() -> None:
    prep = Preprocessing.for_size(224, ["a", "b"])
    assert (prep.image_size, prep.resize_size, prep.class_names) == (224, 256, ["a", "b"])
    assert Preprocessing.for_size(32, []).resize_size == 37
    assert Preprocessing.for_size(32, [], interpolation="bicubic").interpolation == "bicubic"


@pytest.mark.parametrize(("height", "width"), [(48, 64), (64, 48), (37, 37), (400, 30), (20, 20)])
def test_apply_gives_a_normalised_float_square(height: int, width: int) -> None:
    prep = Preprocessing.for_size(32, [])
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    out = prep.apply(image)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 32, 32)
    assert torch.isfinite(out).all()
    crop = prep.resize_crop(image)
    assert crop.dtype == torch.uint8 and tuple(crop.shape) == (3, 32, 32)
    assert min(prep.resize_crop(image).shape[1:]) == 32


def test_apply_normalises_with_the_mean_and_std() -> None:
    prep = Preprocessing.for_size(32, [])
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    white = prep.apply(torch.full((3, 50, 40), 255, dtype=torch.uint8))
    torch.testing.assert_close(white[:, 5, 5], (1 - mean) / std)
    black = prep.apply(torch.zeros((3, 50, 40), dtype=torch.uint8))
    torch.testing.assert_close(black[:, 5, 5], -mean / std)
    # A constant image is still constant after resizing (antialiasing included).
    assert float(white.std(dim=(1, 2)).max()) < 1e-5
    plain = Preprocessing(image_size=16, resize_size=16, mean=(0, 0, 0), std=(1, 1, 1))
    grey = plain.apply(torch.full((3, 16, 16), 51, dtype=torch.uint8))
    torch.testing.assert_close(grey, torch.full((3, 16, 16), 0.2))


def test_resize_crop_keeps_the_centre() -> None:
    prep = Preprocessing(image_size=16, resize_size=16)
    image = torch.zeros((3, 16, 48), dtype=torch.uint8)
    image[0, :, 16:32] = 255  # a red centre third; left and right thirds black
    crop = prep.resize_crop(image)
    assert tuple(crop.shape) == (3, 16, 16)
    assert int(crop[0].min()) == 255 and int(crop[1:].max()) == 0


def test_network_input_equals_stacking_apply() -> None:
    prep = Preprocessing.for_size(32, [], interpolation="bicubic")
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
              for h, w in [(48, 64), (32, 32), (90, 40)]]  # fmt: skip
    batch = prep.network_input([prep.resize_crop(i) for i in images])
    assert isinstance(batch, np.ndarray)
    assert batch.dtype == np.float32 and batch.shape == (3, 3, 32, 32)
    expected = torch.stack([prep.apply(i) for i in images]).numpy()
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-6)


def test_preprocessing_round_trips_and_is_frozen() -> None:
    prep = Preprocessing.for_size(32, ["circle", "square"])
    assert Preprocessing.model_validate_json(prep.model_dump_json()) == prep
    with pytest.raises(ValueError):
        prep.image_size = 64  # type: ignore[misc]
    with pytest.raises(ValueError):
        Preprocessing(image_size=8)


def test_decoded_then_preprocessed_matches_the_pipeline_for_every_format() -> None:
    """No format-dependent skew: a lossless image gives the same network input from any file."""
    prep = Preprocessing.for_size(32, [])
    source = noise_image(64, 48)
    inputs = [prep.apply(decode(encode(source, fmt))) for fmt in ("PNG", "BMP", "TIFF")]
    for other in inputs[1:]:
        torch.testing.assert_close(other, inputs[0], rtol=0, atol=0)


# -- image statistics --------------------------------------------------------------------------


def constant(rgb: tuple[int, int, int], height: int = 30, width: int = 40) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1).expand(3, height, width).clone()


def exif_jpeg(width: int, height: int) -> bytes:
    """A JPEG whose frame header comes after a large EXIF segment (orientation 6)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    exif[0x010E] = "x" * 5000  # ImageDescription: pushes the frame header 5 kB further
    return encode(noise_image(width, height), "JPEG", exif=exif.tobytes())


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (encode(noise_image(53, 37), "JPEG"), (53, 37)),
        (encode(noise_image(53, 37), "JPEG", progressive=True), (53, 37)),
        (exif_jpeg(60, 40), (60, 40)),  # stored size: rotation does not change the pixels
        (encode(noise_image(53, 37), "PNG"), (53, 37)),
        (png(20_000, 20_000, [], 1, 0), (20_000, 20_000)),  # the bomb's claim, unread
    ],
    ids=["jpeg", "progressive-jpeg", "jpeg-after-exif", "png", "png-header-only"],
)
def test_peek_size_reads_png_and_jpeg_headers(data: bytes, size: tuple[int, int]) -> None:
    assert peek_size(data) == size


@pytest.mark.parametrize(
    "data",
    [
        encode(noise_image(53, 37), "GIF"),
        encode(noise_image(53, 37), "WEBP"),
        encode(noise_image(53, 37), "BMP"),
        encode(noise_image(53, 37), "JPEG")[:20],  # cut before the frame header
        b"\xff\xd8\x00garbage" * 3,
        b"",
        b"not an image",
    ],
    ids=["gif", "webp", "bmp", "truncated-jpeg", "garbage-after-soi", "empty", "text"],
)
def test_peek_size_gives_none_for_anything_else(data: bytes) -> None:
    assert peek_size(data) is None


def test_image_stats_has_every_watched_statistic() -> None:
    stats = image_stats(decode(encode(noise_image(64, 48), "PNG")))
    assert tuple(stats) == STAT_NAMES
    assert all(isinstance(v, float) for v in stats.values())
    assert (stats["width"], stats["height"]) == (64.0, 48.0)
    assert stats["aspect"] == pytest.approx(64 / 48)
    for name in ("brightness", "contrast", "saturation", "red", "green", "blue"):
        assert 0.0 <= stats[name] <= 1.0, name
    assert 0.3 < stats["brightness"] < 0.7 and stats["contrast"] > 0.1  # uniform noise


@pytest.mark.parametrize(
    ("rgb", "brightness", "saturation", "means"),
    [
        ((0, 0, 0), 0.0, 0.0, (0, 0, 0)),
        ((255, 255, 255), 1.0, 0.0, (1, 1, 1)),
        ((128, 128, 128), 128 / 255, 0.0, (128 / 255,) * 3),
        ((255, 0, 0), 0.299, 1.0, (1, 0, 0)),
        ((0, 0, 255), 0.114, 1.0, (0, 0, 1)),
    ],
)
def test_image_stats_of_plain_colours(rgb, brightness: float, saturation: float, means) -> None:
    stats = image_stats(constant(rgb))
    assert stats["brightness"] == pytest.approx(brightness, abs=1e-5)
    assert stats["contrast"] == pytest.approx(0.0, abs=1e-6)
    assert stats["saturation"] == pytest.approx(saturation, abs=1e-6)
    assert (stats["red"], stats["green"], stats["blue"]) == pytest.approx(means, abs=1e-6)


def test_half_black_half_white_has_contrast_one_half() -> None:
    image = constant((0, 0, 0), 30, 40)
    image[:, :, 20:] = 255
    stats = image_stats(image)
    assert stats["brightness"] == pytest.approx(0.5, abs=1e-6)
    assert stats["contrast"] == pytest.approx(0.5, abs=0.01)  # std of half 0, half 1


def test_image_stats_take_size_from_the_original_and_colour_from_the_small_copy() -> None:
    original = constant((255, 255, 255), 600, 800)
    small = constant((0, 0, 0), 32, 32)
    stats = image_stats(original, small)
    assert (stats["width"], stats["height"]) == (800.0, 600.0)
    assert stats["aspect"] == pytest.approx(4 / 3)
    assert stats["brightness"] == 0.0
    prep = Preprocessing.for_size(32, [])
    photo = decode(encode(noise_image(96, 64, seed=5), "PNG"))
    full, quick = image_stats(photo), image_stats(photo, prep.resize_crop(photo))
    for name in ("brightness", "red", "green", "blue"):
        assert quick[name] == pytest.approx(full[name], abs=0.03), name


def test_many_images_in_chunks_or_from_their_pixel_grids_give_each_image_its_own_stats() -> None:
    prep = Preprocessing.for_size(224, [])
    photos = [decode(encode(noise_image(90 + 7 * i, 64 + 5 * i, seed=i), "PNG")) for i in range(5)]
    crops = [prep.resize_crop(photo) for photo in photos]
    sizes = [(int(p.shape[-1]), int(p.shape[-2])) for p in photos]
    one_by_one = [image_stats(photo, crop) for photo, crop in zip(photos, crops, strict=True)]
    for columns in (image_stats_many(sizes, crops, chunk=2),  # a last chunk of one
                    image_stats_many(sizes, [stats_pixels(c).copy() for c in crops])):  # fmt: skip
        assert list(columns) == list(STAT_NAMES)
        for name in STAT_NAMES:
            assert columns[name] == pytest.approx([s[name] for s in one_by_one], abs=1e-6), name
    with pytest.raises(ValueError, match="one size"):
        image_stats_many(sizes[:2], [crops[0], photos[1]])

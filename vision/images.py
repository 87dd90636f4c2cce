"""Image bytes in, model-ready tensors out: decoding with safety checks, the preprocessing that
travels with the model, and the statistics monitoring watches.

One path for everything: training, evaluation, the API and the dashboard all call `decode` and
`Preprocessing.apply`, so a served image is resized, cropped and normalised exactly as the
validation images were (no train/serve skew).

`decode` uses torchvision's decoders (libjpeg-turbo, libpng, libwebp: ~2x faster than PIL for a
JPEG) and uses PIL for the rest: BMP and TIFF, which they lack, GIF (first frame only) and
WebP with an EXIF orientation or animation. It applies the EXIF
orientation (a phone photo taken upright arrives rotated otherwise; an EXIF block that does not
parse counts as none, as torchvision treats it in a JPEG), converts greyscale, RGBA, palette,
CMYK and 16-bit images to 8-bit RGB, and refuses, with a message naming the problem, an empty
body, bytes in no format of `PIL_FORMATS` (PIL is never asked to try its other plugins), a
truncated file, a 32-bit integer or floating-point image (no scale to 8 bits is implied), an
image with more pixels than the limit (checked from the header, before a byte is decompressed:
a 50 kB PNG can unpack to gigabytes), one too small to classify, and one too elongated to
resize (`check_size`).
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from common.errors import UserError

#: Default upper bound on width x height (a 40-megapixel photo passes, a decompression bomb not).
MAX_PIXELS = 40_000_000
#: Below this many pixels on a side there is nothing left to classify.
MIN_SIDE = 8
#: Longest over shortest side. Resizing scales the short side to ~256 px, so an 8 x 5,000,000
#: image (40 MP, a few kB as a PNG) would become a 123 GB tensor.
MAX_ASPECT = 20
#: The PIL plugins an image is ever opened with: the formats the service documents (the JPEG
#: one also opens a phone's multi-picture JPEG, as format "MPO"). Without `formats=`, PIL tries
#: every plugin it has, EPS among them, which hands the bytes to Ghostscript, a PostScript
#: interpreter with a record of CVEs.
PIL_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: The EXIF tag holding the orientation; 1 means stored upright.
EXIF_ORIENTATION = 0x0112
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageError(UserError):
    """Bytes that cannot be classified: the message says why (empty, not an image, ...)."""


class Preprocessing(BaseModel):
    """How a decoded image becomes the network's input; saved in every artifact."""

    model_config = ConfigDict(frozen=True)

    image_size: int = Field(224, ge=16, description="Side of the square the network sees.")
    resize_size: int = Field(256, ge=16, description="Shorter side after resizing, before crop.")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    class_names: list[str] = Field(default_factory=list)

    @classmethod
    def for_size(cls, image_size: int, class_names: list[str], **kw: object) -> Preprocessing:
        """torchvision's recipe for its ImageNet weights: resize to 8/7 of the crop, then crop."""
        return cls(
            image_size=image_size,
            resize_size=round(image_size * 256 / 224),
            class_names=class_names,
            **kw,  # type: ignore[arg-type]
        )

    def resize_crop(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 [3, H, W] -> uint8 [3, S, S]: shorter side to `resize_size`, centre crop."""
        mode = (
            F.InterpolationMode.BICUBIC
            if self.interpolation == "bicubic"
            else F.InterpolationMode.BILINEAR
        )
        image = F.resize(image, [self.resize_size], interpolation=mode, antialias=True)
        # contiguous(): the crop is otherwise a strided view into the resized image, and every
        # later read of it (the statistics, the batch) is several times slower for that.
        return F.center_crop(image, [self.image_size, self.image_size]).contiguous()

    def normalise(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 [..., 3, S, S] -> float32, scaled to [0, 1], then standardised per channel."""
        image = F.to_dtype(image, torch.float32, scale=True)
        return F.normalize(image, list(self.mean), list(self.std))

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """A decoded image -> the network's float input [3, S, S] (what validation used)."""
        return self.normalise(self.resize_crop(image))

    def network_input(self, crops: list[torch.Tensor]) -> np.ndarray:
        """Resized crops -> one float32 NCHW array, ready for ONNX Runtime (what serving runs)."""
        return self.normalise(torch.stack(crops)).numpy()


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Image bytes -> uint8 RGB tensor [3, H, W], upright; ImageError naming any problem."""
    if not data:
        raise ImageError("empty file: 0 bytes, expected an image (JPEG, PNG, WebP, ...)")
    width, height, fmt = _header(data)
    check_size(width, height, max_pixels=max_pixels, min_side=min_side)
    if fmt == "WEBP" and _webp_needs_pil(data):  # EXIF orientation or animation
        return _decode_with_pil(data, fmt)
    # GIF goes through PIL, which reads the first frame only: torchvision decodes every frame,
    # and a GIF of thousands of frames passes a check of one frame's size.
    if fmt in ("JPEG", "PNG", "WEBP"):
        try:
            image = decode_image(
                torch.frombuffer(bytearray(data), dtype=torch.uint8),
                mode=ImageReadMode.RGB,
                apply_exif_orientation=True,
            )
        except RuntimeError as exc:
            raise ImageError(f"corrupt or truncated {fmt} image: {_reason(exc)}") from None
        if image.dtype == torch.uint16:  # 16-bit PNG: keep the top 8 bits
            image = (image.to(torch.int32) >> 8).to(torch.uint8)
        return image
    return _decode_with_pil(data, fmt)


def _webp_needs_pil(data: bytes) -> bool:
    """torchvision applies no EXIF orientation to a WebP and refuses an animated one."""
    with Image.open(io.BytesIO(data), formats=["WEBP"]) as im:
        return getattr(im, "is_animated", False) or _orientation(im) != 1


def _orientation(im: Image.Image) -> int:
    """The image's EXIF orientation (1: upright), or 1 when its EXIF block does not parse.

    Broken EXIF is damaged metadata, not damaged pixels: torchvision decodes a JPEG carrying it
    as if it had none, so every format does the same rather than refusing (or, as PIL's
    SyntaxError once did, failing with a 500) a picture that displays fine everywhere else."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION, 1)
    except (SyntaxError, OSError, ValueError, EOFError, struct.error):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


_SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF8": "GIF",
               b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}  # fmt: skip


def _sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((f for sig, f in _SIGNATURES.items() if data.startswith(sig)), None)


def check_size(
    width: int, height: int, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE
) -> None:
    """ImageError unless the image's size is one the model can take (also what training's
    folder check applies, so no image fails in the middle of an epoch)."""
    if width * height > max_pixels:
        raise ImageError(
            f"image too large: {width}x{height} = {width * height:,} pixels, above the limit "
            f"of {max_pixels:,}; downscale it first"
        )
    if min(width, height) < min_side:
        raise ImageError(
            f"image too small: {width}x{height} pixels; at least {min_side}x{min_side} needed"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(
            f"image too elongated: {width}x{height} pixels, more than {MAX_ASPECT}:1; crop it"
        )


def peek_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG read straight from its first bytes, or None (another
    format, or a header that does not parse). A guess for scheduling, ~25x cheaper than PIL's
    parser right after a forward pass: `decode` still checks every image for real."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before the marker
            at += 1
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(
                data[at + 5 : at + 7], "big"
            )
        else:  # any other segment: skip it by its length
            at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _header(data: bytes) -> tuple[int, int, str]:
    """Width, height and format from the header alone (PIL opens lazily)."""
    try:
        with warnings.catch_warnings():
            # PIL warns above its own bomb limit; ours is checked (and reported) by the caller.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as im:
                return im.width, im.height, str(im.format)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        fmt = _sniff(data)
        if fmt is not None:
            raise ImageError(f"corrupt or truncated {fmt} image: {_reason(exc)}") from None
        raise ImageError(
            f"not an image: the bytes are no format this service reads "
            f"(JPEG, PNG, WebP, GIF, BMP, TIFF) ({_reason(exc)})"
        ) from None


#: Pixel modes with no implied 8-bit scale: 32-bit integers (or signed 16-bit ones, which PIL
#: widens to "I") and 32-bit floats hold measurements in whatever range their instrument used.
#: Shifting by 8 bits, as for 16-bit images, wraps; PIL's convert("RGB") clips to 0..255.
_UNSCALED_MODES = {"I": "32-bit or signed integer", "F": "32-bit floating point"}


def _decode_with_pil(data: bytes, fmt: str) -> torch.Tensor:
    try:
        with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as im:
            im.seek(0)
            if im.mode in _UNSCALED_MODES:
                raise ImageError(
                    f"unsupported {fmt} pixel format: mode {im.mode!r} "
                    f"({_UNSCALED_MODES[im.mode]} greyscale) has no 8-bit scale to convert to; "
                    "save it as an 8- or 16-bit image"
                )
            upright = ImageOps.exif_transpose(im) if _orientation(im) != 1 else im
            if upright.mode in ("I;16", "I;16B", "I;16L"):  # 16-bit greyscale: the top 8 bits
                array = (np.asarray(upright, dtype=np.uint16) >> 8).astype(np.uint8)
                upright = Image.fromarray(array)  # uint8, 2-D: mode "L"
            rgb = np.array(upright.convert("RGB"))
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageError(f"corrupt or truncated {fmt} image: {_reason(exc)}") from None
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def _reason(exc: BaseException) -> str:
    """The useful last line of a library's message (torchvision prefixes a C++ source path)."""
    if isinstance(exc, UnidentifiedImageError):
        return "unknown file signature"
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.rsplit(", ", 1)[-1] if "/csrc/" in text else text


STAT_NAMES = ("width", "height", "aspect", "brightness", "contrast", "saturation",
              "red", "green", "blue")  # fmt: skip


# Rows: red, green, blue and luma (ITU-R BT.601), each taking 0..255 to 0..1: one matrix
# product gives all four per pixel.
_MIX = (np.vstack([np.eye(3), [[0.299, 0.587, 0.114]]]) / 255.0).astype(np.float32)


def image_stats(image: torch.Tensor, small: torch.Tensor | None = None) -> dict[str, float]:
    """What monitoring watches of one image: its size and shape, and the colour statistics of
    `small` (the resized crop, when there is one); see `image_stats_many`."""
    height, width = image.shape[-2:]
    source = small if small is not None else image
    columns = image_stats_many([(int(width), int(height))], [source])
    return {name: values[0] for name, values in columns.items()}


def stats_pixels(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The pixels the colour statistics read, a view: every k-th in each direction, a grid of
    56 to 111 pixels a side, which gives the same statistics to two decimals as all of them.
    Idempotent: the statistics of this grid are those of the image."""
    pixels = image.numpy() if isinstance(image, torch.Tensor) else image
    step = max(1, min(pixels.shape[-2:]) // 56)
    return pixels[:, ::step, ::step]


def image_stats_many(
    sizes: Sequence[tuple[int, int]],
    images: Sequence[torch.Tensor | np.ndarray],
    chunk: int = 512,
) -> dict[str, list[float]]:
    """What monitoring watches of many images, as columns: size and shape from `sizes` (width
    and height of each original), colour statistics of `images` (uint8 [3, H, W], all of one
    size: the resized crops, or their `stats_pixels`), `chunk` images at a time.

    Vectorised over the images because each numpy call costs ~10 µs right after a forward pass
    has evicted the caches: a dozen of them per image were 180 µs of every API request, against
    ~12 µs an image for 32 at once (the service's drift window reads them in bulk)."""
    width, height = np.asarray(sizes, dtype=np.float64).reshape(-1, 2).T
    columns: dict[str, list[float]] = {
        "width": width.tolist(), "height": height.tolist(), "aspect": (width / height).tolist(),
    }  # fmt: skip
    for start in range(0, len(images), chunk):
        for name, values in _colour_stats(images[start : start + chunk]).items():
            columns.setdefault(name, []).extend(values)
    return {name: columns.get(name, []) for name in STAT_NAMES}


def _colour_stats(images: Sequence[torch.Tensor | np.ndarray]) -> dict[str, list[float]]:
    samples = [stats_pixels(image) for image in images]
    shapes = {sample.shape for sample in samples}
    if len(shapes) > 1:
        raise ValueError(f"images of one size expected, got samples of {sorted(shapes)}")
    pixels = np.stack(samples).reshape(len(images), 3, -1)  # uint8 [k, 3, n]
    n = pixels.shape[2]
    rows = _MIX @ pixels.astype(np.float32)  # [k, 4, n]: red, green, blue, luma
    means = rows.sum(axis=2) / n  # [k, 4]
    centred = rows[:, 3] - means[:, 3:]
    top, bottom = pixels.max(axis=1), pixels.min(axis=1)  # [k, n]
    # (max - min) / max per pixel; a black pixel (max 0) has no saturation, not 0/0.
    saturation = ((top - bottom) / np.maximum(top, 1).astype(np.float32)).sum(axis=1) / n
    return {
        "brightness": means[:, 3].tolist(),
        "contrast": np.sqrt(np.einsum("kn,kn->k", centred, centred) / n).tolist(),
        "saturation": saturation.tolist(),
        "red": means[:, 0].tolist(),
        "green": means[:, 1].tolist(),
        "blue": means[:, 2].tolist(),
    }

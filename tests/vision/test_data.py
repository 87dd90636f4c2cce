"""Data contract of the vision project: the built-in shapes dataset and the image-folder scanner.

The generator must be deterministic and lay files out as torchvision's ImageFolder does; the
scanner must split reproducibly, skip every kind of unusable file with its reason (and keep the
rest), and refuse folders that cannot make a dataset with a message that names the problem.
Images are tiny (32 px), so the whole file runs in a few seconds.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vision.shapes
from vision.data import (
    IMAGE_EXTENSIONS,
    SHAPES,
    DataError,
    ImageFolder,
    Item,
    scan,
    write_shapes,
)

SMALL = {"size": 32, "per_class": 10}
THREE = ("circle", "square", "triangle")


def files(root: Path) -> dict[str, bytes]:
    """Every file under root by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def split_names(folder: ImageFolder) -> tuple[list[str], list[str]]:
    """Train and val files as paths relative to the root: comparable across roots."""
    train, val = (
        [i.path.relative_to(folder.root).as_posix() for i in part]
        for part in (folder.train, folder.val)
    )
    return train, val


def save_image(path: Path, seed: int = 0, size: int = 32, fmt: str | None = None) -> Path:
    """A noisy RGB image (noise keeps a JPEG large enough to cut in half meaningfully)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, fmt)
    return path


def image_folder(counts: list[int], skipped: int = 0) -> ImageFolder:
    """An ImageFolder with the given train counts per class (a, b, c, ...), one val per class."""
    classes = [chr(ord("a") + i) for i in range(len(counts))]
    train = [Item(Path(f"{c}/{i}.png"), k) for k, c in enumerate(classes) for i in range(counts[k])]
    val = [Item(Path(f"{c}/v.png"), k) for k, c in enumerate(classes)]
    bad = [(Path(f"bad{i}.txt"), "not an image extension (.txt)") for i in range(skipped)]
    return ImageFolder(Path("root"), classes, train, val, bad, presplit=False)


# --- write_shapes ----------------------------------------------------------------------------


def test_shapes_are_laid_out_per_class_with_a_third_as_jpeg(tmp_path: Path) -> None:
    out = write_shapes(tmp_path / "shapes", **SMALL)
    assert out == tmp_path / "shapes"
    assert sorted(p.name for p in out.iterdir()) == sorted(SHAPES)
    for name in SHAPES:
        paths = sorted((out / name).iterdir())
        assert [p.stem for p in paths] == [f"{name}_{i:04d}" for i in range(10)]
        assert sum(p.suffix == ".jpg" for p in paths) == 3  # a third: both decoders in play
        assert {p.suffix for p in paths} == {".png", ".jpg"}
        with Image.open(paths[0]) as image:
            assert (image.size, image.mode) == ((32, 32), "RGB")
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no temporary folder left


def test_shapes_are_deterministic_per_seed(tmp_path: Path) -> None:
    first = files(write_shapes(tmp_path / "a", classes=THREE, **SMALL))
    again = files(write_shapes(tmp_path / "b", classes=THREE, **SMALL))
    other = files(write_shapes(tmp_path / "c", classes=THREE, seed=7, **SMALL))
    assert first == again  # byte for byte
    assert first.keys() == other.keys()
    assert sum(first[k] != other[k] for k in first) == len(first)
    # Each image has its own generator: image i does not depend on how many are drawn.
    fewer = files(write_shapes(tmp_path / "d", classes=THREE[:2], size=32, per_class=4))
    assert all(fewer[k] == first[k] for k in fewer)


def test_shapes_imbalance_shrinks_the_last_class(tmp_path: Path) -> None:
    out = write_shapes(tmp_path / "s", classes=THREE, size=32, per_class=20, imbalance=4.0)
    assert [len(list((out / c).iterdir())) for c in THREE] == [20, 20, 5]


def test_shapes_split_writes_train_and_val(tmp_path: Path) -> None:
    out = write_shapes(tmp_path / "s", classes=THREE, size=32, per_class=10, split=True)
    assert sorted(p.name for p in out.iterdir()) == ["train", "val"]
    for c in THREE:
        assert len(list((out / "train" / c).iterdir())) == 8
        assert sorted(p.stem for p in (out / "val" / c).iterdir()) == [f"{c}_0008", f"{c}_0009"]
    folder = scan(out)
    assert folder.presplit
    assert folder.counts("train") == dict.fromkeys(THREE, 8)
    assert folder.counts("val") == dict.fromkeys(THREE, 2)


def test_shapes_refuse_a_non_empty_folder_but_fill_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match=r"full: already exists and is not empty"):
        write_shapes(tmp_path / "full", classes=THREE, **SMALL)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert len(files(write_shapes(tmp_path / "empty", classes=THREE, **SMALL))) == 30


def test_an_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = []

    def failing_render(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
        if len(drawn) == 7:
            raise KeyboardInterrupt
        drawn.append(shape)
        return Image.new("RGB", (size, size))

    monkeypatch.setattr(vision.shapes, "render", failing_render)
    with pytest.raises(KeyboardInterrupt):
        write_shapes(tmp_path / "s", classes=THREE, **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ("circle", "hexagon")}, "hexagon"),
        ({"classes": ("circle",)}, "2\\+ distinct"),
        ({"classes": ("circle", "circle")}, "2\\+ distinct"),
        ({"imbalance": 0.5}, "imbalance must be at least 1"),
        ({"per_class": 1}, "at least 2 images"),
        ({"size": 8}, "size must be at least 16"),
    ],
)
def test_shapes_reject_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_shapes(tmp_path / "s", **kwargs)


# --- scan: layouts and splits ----------------------------------------------------------------


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of 20 images, one of 8: class folders directly under the root."""
    root = tmp_path_factory.mktemp("flat") / "shapes"
    return write_shapes(root, classes=(*THREE, "star"), size=32, per_class=20, imbalance=2.5)


def test_scan_splits_each_class_in_proportion(flat: Path) -> None:
    folder = scan(flat, val_size=0.25, seed=1)
    assert not folder.presplit and folder.skipped == []
    assert folder.classes == sorted([*THREE, "star"])  # sorted names: labels are their indices
    assert folder.counts("train") == {"circle": 15, "square": 15, "star": 6, "triangle": 15}
    assert folder.counts("val") == {"circle": 5, "square": 5, "star": 2, "triangle": 5}
    for item in folder.train + folder.val:
        assert item.path.parent.name == folder.classes[item.label]
    train, val = split_names(folder)
    assert train == sorted(train) and val == sorted(val)
    assert not set(train) & set(val)


def test_scan_split_depends_on_the_seed_only(flat: Path, tmp_path: Path) -> None:
    first = split_names(scan(flat, seed=3))
    assert split_names(scan(flat, seed=3)) == first
    assert split_names(scan(flat, seed=4))[1] != first[1]
    # Another root (another machine, another checkout) gives the same split.
    moved = shutil.copytree(flat, tmp_path / "elsewhere" / "copy")
    assert split_names(scan(moved, seed=3)) == first


def test_scan_reads_a_presplit_folder(tmp_path: Path) -> None:
    for split, n in (("train", 4), ("val", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                save_image(tmp_path / split / c / f"{i}.png", seed=i)
    save_image(tmp_path / "test" / "cat" / "0.png")  # neither train nor val: not read
    (tmp_path / "README.md").write_text("about")
    (tmp_path / "val" / "dog" / "nested").mkdir()
    save_image(tmp_path / "val" / "dog" / "nested" / "deep.jpg")  # sub-folders count, as in tv
    folder = scan(tmp_path, val_size=0.5)
    assert folder.presplit
    assert folder.classes == ["cat", "dog"]
    assert folder.counts("train") == {"cat": 4, "dog": 4}
    assert folder.counts("val") == {"cat": 2, "dog": 3}
    assert {p.name for p, _ in folder.skipped} == {"README.md", "test"}


def test_scan_without_verify_checks_only_names_and_sizes(tmp_path: Path) -> None:
    for c in ("a", "b"):
        for i in range(3):
            save_image(tmp_path / c / f"{i}.png", seed=i)
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "a" / "empty.png").touch()
    folder = scan(tmp_path, verify=False)
    assert len(folder.train) + len(folder.val) == 7  # broken.png passes unchecked
    assert [(p.name, why) for p, why in folder.skipped] == [("empty.png", "empty file")]


# --- scan: unusable files --------------------------------------------------------------------


def test_scan_skips_unusable_files_with_their_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for c in ("cat", "dog"):
        for i, ext in enumerate(IMAGE_EXTENSIONS):
            save_image(tmp_path / c / f"{i}{ext.upper() if i % 2 else ext}", seed=i)
    cat = tmp_path / "cat"
    save_image(cat / "anim.gif")
    (cat / "notes.txt").write_text("a note")
    (cat / "zero.jpg").touch()
    whole = save_image(cat / "whole.jpg", size=64).read_bytes()
    (cat / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (cat / "garbage.png").write_bytes(np.random.default_rng(0).bytes(300))
    png = bytearray(save_image(cat / "corrupt.png", size=64).read_bytes())
    png[100:160] = bytes(60)  # the header survives, the compressed pixels do not
    (cat / "corrupt.png").write_bytes(png)
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: ignored, not even reported
    (tmp_path / ".cache").mkdir()
    save_image(tmp_path / ".cache" / "x.png")
    save_image(tmp_path / "loose.png")

    with caplog.at_level(logging.WARNING, logger="vision.data"):
        folder = scan(tmp_path, val_size=0.3)
    reasons = {path.name: why for path, why in folder.skipped}
    assert reasons == {
        "anim.gif": "not an image extension (.gif)",
        "notes.txt": "not an image extension (.txt)",
        "zero.jpg": "empty file",
        "truncated.jpg": reasons["truncated.jpg"],
        "garbage.png": reasons["garbage.png"],
        "corrupt.png": reasons["corrupt.png"],
        "loose.png": reasons["loose.png"],
    }
    # The reasons are vision.images.decode's own: the scan decodes as training does.
    assert reasons["truncated.jpg"].startswith("corrupt or truncated JPEG image")
    assert reasons["garbage.png"].startswith("not an image: ")
    assert reasons["corrupt.png"].startswith("corrupt or truncated PNG image")
    assert reasons["loose.png"].startswith("not in a class folder")
    kept = {item.path.name for item in folder.train + folder.val}
    good = {f"{i}{e.upper() if i % 2 else e}" for i, e in enumerate(IMAGE_EXTENSIONS)}
    assert kept == {*good, "whole.jpg"}  # upper-case extensions count too
    assert folder.counts("train")["cat"] + folder.counts("val")["cat"] == 8  # 7 + whole.jpg

    records = [r for r in caplog.records if r.name == "vision.data"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "skipped 7 files" in records[0].getMessage()
    assert f"\n  {Path('cat', 'truncated.jpg')}: corrupt or truncated" in records[0].getMessage()


def test_the_warning_lists_twenty_files_then_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for c in ("a", "b"):
        for i in range(2):
            save_image(tmp_path / c / f"{i}.png", seed=i)
        for i in range(15):
            (tmp_path / c / f"{i}.txt").write_text("x")
    with caplog.at_level(logging.WARNING, logger="vision.data"):
        folder = scan(tmp_path, val_size=0.5)
    assert len(folder.skipped) == 30
    (message,) = [r.getMessage() for r in caplog.records if r.name == "vision.data"]
    assert message.count("not an image extension") == 20
    assert message.endswith("and 10 more")


def test_images_over_twice_pils_pixel_limit_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for c in ("a", "b"):
        for i in range(2):
            save_image(tmp_path / c / f"small{i}.png", size=8, seed=i)
    save_image(tmp_path / "a" / "big.png", size=32)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32x32 = 1024 px: over twice it
    folder = scan(tmp_path, val_size=0.5)
    assert [(p.name, why[:16]) for p, why in folder.skipped] == [("big.png", "image too large:")]


def test_images_serving_would_refuse_are_skipped_before_training(tmp_path: Path) -> None:
    """The size rules of vision.images.check_size, so no image fails in the middle of an epoch."""
    for c in ("a", "b"):
        for i in range(2):
            save_image(tmp_path / c / f"ok{i}.png", size=16, seed=i)
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "tiny.png")
    Image.new("RGB", (420, 20)).save(tmp_path / "b" / "strip.png")
    folder = scan(tmp_path, val_size=0.5)
    reasons = {p.name: why for p, why in folder.skipped}
    assert reasons["tiny.png"].startswith("image too small: 4x4")
    assert reasons["strip.png"].startswith("image too elongated: 420x20")


def test_the_scan_skips_what_trainings_decoder_refuses_though_pil_reads_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan decodes with vision.images.decode, as training does: a float TIFF loads in PIL
    (which the scan once used) but decode refuses it, so it would have failed mid-epoch. An EPS
    file named .png is refused by format, and Ghostscript is never run on it."""
    from PIL import EpsImagePlugin

    from tests.vision.conftest import EPS, broken_exif

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the EPS plugin was tried")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", forbidden)
    for c in ("a", "b"):
        for i in range(2):
            save_image(tmp_path / c / f"ok{i}.png", size=16, seed=i)
    Image.fromarray(np.full((16, 16), 0.5, np.float32)).save(tmp_path / "a" / "float.tif")
    Image.open(tmp_path / "a" / "float.tif").load()  # PIL reads it
    (tmp_path / "a" / "vector.png").write_bytes(EPS)
    (tmp_path / "b" / "exif.webp").write_bytes(broken_exif())  # decodes: kept
    with caplog.at_level(logging.WARNING, logger="vision.data"):
        folder = scan(tmp_path, val_size=0.5)
    reasons = {p.name: why for p, why in folder.skipped}
    assert reasons.keys() == {"float.tif", "vector.png"}
    assert reasons["float.tif"].startswith("unsupported TIFF pixel format: mode 'F'")
    assert reasons["vector.png"].startswith("not an image: ")
    assert "exif.webp" in {item.path.name for item in folder.train + folder.val}
    (message,) = [r.getMessage() for r in caplog.records if r.name == "vision.data"]
    assert f"{Path('a', 'float.tif')}: unsupported TIFF pixel format" in message


# --- scan: folders that cannot be a dataset --------------------------------------------------


def test_scan_refuses_a_missing_or_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope: no such directory"):
        scan(tmp_path / "nope")
    (tmp_path / "file.png").touch()
    with pytest.raises(DataError, match=r"file.png: not a directory"):
        scan(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no class folders"):
        scan(tmp_path / "empty")
    with pytest.raises(DataError, match="val_size must be between 0 and 1"):
        scan(tmp_path, val_size=1.0)


def test_scan_refuses_a_single_class(tmp_path: Path) -> None:
    for i in range(4):
        save_image(tmp_path / "cat" / f"{i}.png", seed=i)
    with pytest.raises(DataError, match=r"only one class folder \('cat'\)"):
        scan(tmp_path)


def test_scan_names_every_class_with_too_few_images(tmp_path: Path) -> None:
    for i in range(4):
        save_image(tmp_path / "cat" / f"{i}.png", seed=i)
    save_image(tmp_path / "dog" / "0.png")
    (tmp_path / "dog" / "1.png").touch()  # present, but not usable
    (tmp_path / "owl").mkdir()
    with pytest.raises(DataError) as error:
        scan(tmp_path)
    message = str(error.value)
    assert re.search(r"class 'dog' \(.*dog\) has 1 usable images, needs at least 2", message)
    assert "class 'owl'" in message and "has 0 usable images" in message
    assert "'cat'" not in message


def test_scan_refuses_a_split_too_small_for_every_class(tmp_path: Path) -> None:
    for c in THREE:
        for i in range(2):
            save_image(tmp_path / c / f"{i}.png", seed=i)
    with pytest.raises(DataError, match=r"6 images cannot be split into 4 train and 2 val"):
        scan(tmp_path, val_size=0.2)
    assert len(scan(tmp_path, val_size=0.5).val) == 3


def test_scan_refuses_half_a_presplit_folder(tmp_path: Path) -> None:
    for c in ("cat", "dog"):
        save_image(tmp_path / "train" / c / "0.png")
    with pytest.raises(DataError, match=r"train: holds class folders but .*val does not exist"):
        scan(tmp_path)


def test_scan_follows_links_but_not_round_in_circles(tmp_path: Path) -> None:
    for c in ("cat", "dog"):
        for i in range(2):
            save_image(tmp_path / c / f"{i}.png", seed=i)
    try:
        (tmp_path / "cat" / "again").symlink_to(tmp_path / "cat", target_is_directory=True)
    except OSError:  # Windows without the symlink privilege
        pytest.skip("cannot create symbolic links here")
    assert scan(tmp_path, val_size=0.5).counts("val") == {"cat": 1, "dog": 1}


def test_scan_refuses_a_val_class_missing_from_train(tmp_path: Path) -> None:
    for c in ("cat", "dog"):
        save_image(tmp_path / "train" / c / "0.png")
        save_image(tmp_path / "val" / c / "0.png")
    save_image(tmp_path / "val" / "owl" / "0.png")
    with pytest.raises(DataError, match=r"class 'owl' \(.*val.owl\) is in val/ but not in train/"):
        scan(tmp_path)


# --- ImageFolder -----------------------------------------------------------------------------


def test_class_weights_are_inverse_frequency_with_mean_one() -> None:
    folder = image_folder([6, 3, 1])
    assert folder.counts() == {"a": 6, "b": 3, "c": 1}
    assert folder.counts("val") == {"a": 1, "b": 1, "c": 1}
    weights = folder.class_weights()
    assert weights == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    assert np.mean([weights[item.label] for item in folder.train]) == pytest.approx(1.0)
    assert folder.imbalance() == 6.0
    assert image_folder([5, 5]).class_weights() == [1.0, 1.0]
    assert image_folder([5, 5]).imbalance() == 1.0
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        folder.counts("test")


def test_class_weights_of_a_generated_imbalanced_set(flat: Path) -> None:
    folder = scan(flat, val_size=0.25)  # train: 15, 15, 6, 15 (star is the rare class)
    assert folder.imbalance() == 2.5
    assert folder.class_weights() == pytest.approx([51 / 60, 51 / 60, 51 / 24, 51 / 60])


def test_summary_names_classes_counts_imbalance_and_skipped() -> None:
    text = image_folder([6, 3, 1], skipped=2).summary()
    assert "3 classes, 13 images (10 train, 3 val" in text
    assert re.search(r"^  a\s+6\s+1$", text, re.MULTILINE)
    assert "imbalance: 6.00" in text
    assert "skipped: 2 files" in text
    many = image_folder([2] * 25).summary()
    assert "... and 5 more classes" in many

"""Image folders: which files are images of which class, which of them decode, and the splits.

`scan` reads the layout torchvision's ImageFolder uses, `root/<class>/<image>`, or a dataset
split beforehand as `root/train/<class>/...` and `root/val/<class>/...`. Real folders hold more
than images (a README, .DS_Store, a half-downloaded JPEG), so every file that is not a usable
image is skipped with its reason, logged once, and kept in `ImageFolder.skipped`. Files are
checked with `vision.images.decode`, the very function training (and serving) decodes with, so
training never meets a file that fails to decode in the middle of an epoch. Unsplit folders are
split stratified and seeded, from a path-sorted list, so a split is the same on every machine.

`write_shapes` writes the built-in dataset (rendered shapes, `vision.shapes`) in that layout.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split
from tqdm import tqdm

from common.errors import UserError
from vision.images import ImageError, decode
from vision.shapes import SHAPES, write_images  # SHAPES is re-exported: callers import it here

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_SPLITS = ("train", "val")
_LISTED = 20  # skipped files named in the warning; the rest are counted
_WORKERS = min(8, os.cpu_count() or 1)  # the decoders release the GIL, so threads scale

log = logging.getLogger(__name__)


class DataError(UserError):
    """An image folder cannot be a dataset: missing, laid out wrongly, or too few images."""


@dataclass(frozen=True)
class Item:
    """One usable image and its class."""

    path: Path
    label: int  # index into ImageFolder.classes


@dataclass
class ImageFolder:
    """What `scan` found: the classes, the usable images split in two, and what it skipped."""

    root: Path
    classes: list[str]  # sorted class folder names; a label is an index into this list
    train: list[Item]
    val: list[Item]
    skipped: list[tuple[Path, str]]  # (file, why it is not used)
    presplit: bool  # True when root had train/ and val/ sub-folders

    def counts(self, split: str = "train") -> dict[str, int]:
        """Images per class in `split` ("train" or "val"), every class listed, in label order."""
        if split not in _SPLITS:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        tally = Counter(item.label for item in (self.train if split == "train" else self.val))
        return {name: tally[label] for label, name in enumerate(self.classes)}

    def imbalance(self) -> float:
        """Largest over smallest class count in train: 1.0 is balanced."""
        counts = self.counts().values()
        return max(counts) / min(counts) if min(counts) else math.inf

    def class_weights(self) -> list[float]:
        """n / (k * n_c) per class: rare classes weigh more, and the mean over train items is 1."""
        counts = list(self.counts().values())
        n, k = sum(counts), len(counts)
        return [n / (k * c) if c else 0.0 for c in counts]

    def summary(self) -> str:
        """Classes, images per split and class, imbalance and skipped files, for a terminal."""
        how = "presplit in train/ and val/" if self.presplit else "split here, stratified"
        lines = [
            f"{self.root}: {len(self.classes)} classes, {len(self.train) + len(self.val)} images"
            f" ({len(self.train)} train, {len(self.val)} val; {how})"
        ]
        train, val = self.counts("train"), self.counts("val")
        width = max(len(name) for name in [*self.classes, "class"])
        lines.append(f"  {'class':<{width}}  {'train':>6}  {'val':>6}")
        lines += [f"  {c:<{width}}  {train[c]:>6}  {val[c]:>6}" for c in self.classes[:_LISTED]]
        if len(self.classes) > _LISTED:
            lines.append(f"  ... and {len(self.classes) - _LISTED} more classes")
        lines.append(f"imbalance: {self.imbalance():.2f} (largest / smallest class in train)")
        lines.append(f"skipped: {len(self.skipped)} files that are not usable images")
        return "\n".join(lines)


def _files(folder: Path) -> Iterator[Path]:
    """Non-hidden files under `folder`, recursively and sorted; links followed, loops not."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree: stop rather than walk it forever
            dirnames.clear()
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield from (Path(dirpath, f) for f in sorted(filenames) if not f.startswith("."))


def _class_files(folder: Path, skipped: list[tuple[Path, str]]) -> dict[str, list[Path]]:
    """Files per class sub-folder of `folder`; files lying in `folder` itself are skipped."""
    by_class: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            by_class[entry.name] = list(_files(entry))
        else:
            skipped.append((entry, f"not in a class folder ({folder.name}/<class>/<image>)"))
    return by_class


def _decode_problem(path: Path) -> str | None:
    """Why `decode` refuses `path`, or None when it decodes.

    The full decode training runs, not a cheaper check: a scan with its own decoder (PIL, at
    reduced JPEG scale) once passed files that training's decoder then refused mid-epoch. It
    costs about what one epoch's decoding does (~1.6x the reduced-scale check on a JPEG)."""
    try:
        decode(path.read_bytes())
    except ImageError as exc:  # every malformed file the decoders report: the reason says what
        return str(exc)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    except Exception as exc:
        # A decoder raising something `decode` does not translate would raise in training too:
        # skip the file, naming the exception, and keep the traceback for whoever debugs it.
        log.debug("decoding %s raised", path, exc_info=True)
        return f"cannot be decoded ({type(exc).__name__}: {exc})"
    return None


def _problem(path: Path, verify: bool) -> str | None:
    """Why `path` is not a usable image, or None when it is."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image extension ({path.suffix.lower() or 'no extension'})"
    try:
        if path.stat().st_size == 0:
            return "empty file"
    except OSError as exc:  # e.g. a dangling link
        return f"cannot be read: {exc.strerror or exc}"
    return _decode_problem(path) if verify else None


def _check(paths: list[Path], verify: bool) -> list[str | None]:
    """`_problem` for every path, in order; decoding runs on threads behind a progress bar."""
    if not verify:
        return [_problem(p, verify=False) for p in paths]
    bar = tqdm(total=len(paths), desc="checking images", unit="img", disable=None, delay=1.0)
    with bar, ThreadPoolExecutor(_WORKERS) as pool:
        problems = []
        for problem in pool.map(lambda p: _problem(p, verify=True), paths):
            problems.append(problem)
            bar.update()
    return problems


def _warn_skipped(root: Path, skipped: list[tuple[Path, str]]) -> None:
    if not skipped:
        return
    lines = [f"  {path.relative_to(root)}: {reason}" for path, reason in skipped[:_LISTED]]
    if len(skipped) > _LISTED:
        lines.append(f"  and {len(skipped) - _LISTED} more")
    log.warning("%s: skipped %d files:\n%s", root, len(skipped), "\n".join(lines))


def _sorted(items: list[Item], root: Path) -> list[Item]:
    """By path relative to root, so that order (and so the split) is the same on any machine."""
    return sorted(items, key=lambda item: item.path.relative_to(root).as_posix())


def _require(root: Path, classes: list[str], problems: list[str]) -> None:
    if not classes:
        raise DataError(
            f"{root}: no class folders; put each class's images in its own sub-folder "
            f"({root}/<class>/<image>), or use train/<class>/ and val/<class>/ sub-folders"
        )
    if len(classes) < 2:
        hint = " (a presplit folder needs both train/ and val/)" if classes[0] in _SPLITS else ""
        raise DataError(
            f"{root}: only one class folder ({classes[0]!r}); a classifier needs at least two{hint}"
        )
    if problems:
        raise DataError(f"{root}: " + "; ".join(problems))


def scan(root: Path, *, val_size: float = 0.2, seed: int = 42, verify: bool = True) -> ImageFolder:
    """Find the classes and usable images under `root` and split them into train and val.

    `val_size` and `seed` are used only when `root` is not presplit. With `verify`, every image
    is decoded once, as training decodes it (~30 ms a 6-megapixel JPEG, on up to 8 threads:
    well under a minute per thousand photos); without it, only extensions and sizes are checked.
    """
    root = Path(root)
    if not 0.0 < val_size < 1.0:
        raise DataError(f"val_size must be between 0 and 1 (exclusive), got {val_size}")
    if not root.is_dir():
        what = "not a directory" if root.exists() else "no such directory"
        raise DataError(f"{root}: {what}; give the folder holding one sub-folder per class")

    skipped: list[tuple[Path, str]] = []
    presplit = (root / "train").is_dir() and (root / "val").is_dir()
    if presplit:
        for entry in sorted(root.iterdir()):
            if entry.name not in _SPLITS and not entry.name.startswith("."):
                skipped.append((entry, "not read: a presplit folder uses only train/ and val/"))
        tree = {split: _class_files(root / split, skipped) for split in _SPLITS}
    else:
        # train/ alone (or val/ alone) holding class folders is a presplit set missing a half;
        # read as classes, it would quietly become a "train" class holding every image.
        for half in _SPLITS:
            if (root / half).is_dir() and any(p.is_dir() for p in (root / half).iterdir()):
                other = next(s for s in _SPLITS if s != half)
                raise DataError(
                    f"{root / half}: holds class folders but {root / other} does not exist; "
                    f"a presplit folder needs both train/ and val/"
                )
        tree = {"all": _class_files(root, skipped)}
    classes = sorted(tree["train" if presplit else "all"])

    label = {name: i for i, name in enumerate(classes)}
    found = [(split, name, p) for split, by in tree.items() for name, ps in by.items() for p in ps]
    usable: dict[str, list[Item]] = {split: [] for split in tree}
    problems_found = _check([path for _, _, path in found], verify)
    for (split, name, path), problem in zip(found, problems_found, strict=True):
        if problem is not None:
            skipped.append((path, problem))
        elif name in label:
            usable[split].append(Item(path, label[name]))
    skipped.sort(key=lambda entry: entry[0].relative_to(root).as_posix())
    _warn_skipped(root, skipped)

    usable = {split: _sorted(items, root) for split, items in usable.items()}
    items = usable["train" if presplit else "all"]
    have = Counter(item.label for item in items)
    least = 1 if presplit else 2  # unsplit: one image for train and one for val, at least
    problems = [
        f"class {name!r} ({(root / 'train' if presplit else root) / name}) has {have[label]}"
        f" usable images, needs at least {least}"
        for label, name in enumerate(classes)
        if have[label] < least
    ]
    if presplit:
        problems += [
            f"class {name!r} ({root / 'val' / name}) is in val/ but not in train/"
            for name in sorted(set(tree["val"]) - set(classes))
        ]
        if not usable["val"] and classes:
            problems.append(f"{root / 'val'} holds no usable images")
    _require(root, classes, problems)
    if presplit:
        return ImageFolder(root, classes, usable["train"], usable["val"], skipped, True)

    # sklearn's rule: val gets ceil(val_size * n); stratified, each part needs every class.
    n, k = len(items), len(classes)
    n_val = math.ceil(val_size * n)
    if n_val < k or n - n_val < k:
        raise DataError(
            f"{root}: {n} images cannot be split into {n - n_val} train and {n_val} val "
            f"images holding all {k} classes each; add images or change val_size ({val_size})"
        )
    labels = [item.label for item in items]
    train, val = train_test_split(items, test_size=val_size, random_state=seed, stratify=labels)
    return ImageFolder(root, classes, _sorted(train, root), _sorted(val, root), skipped, False)


def write_shapes(
    out: Path,
    *,
    per_class: int = 120,
    size: int = 96,
    seed: int = 42,
    classes: Sequence[str] = SHAPES,
    imbalance: float = 1.0,
    split: bool = False,
) -> Path:
    """Write the rendered shapes dataset to `out` (see `vision.shapes.write_images`); return it.

    `out` must not exist or be empty. The folder appears whole or not at all: images go to a
    hidden folder beside it, renamed at the end, so an interrupted run leaves no half dataset.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not empty; delete it or choose another")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        write_images(
            tmp,
            per_class=per_class,
            size=size,
            seed=seed,
            classes=classes,
            imbalance=imbalance,
            split=split,
        )
        if out.exists():
            out.rmdir()  # empty (checked above); os.replace cannot replace a folder on Windows
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out

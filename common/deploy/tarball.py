"""An artifact directory as `model.tar.gz`: the archive SageMaker (and most model hosts) unpack
into the container's model directory, `/opt/ml/model`.

The archive's root is the artifact's root (`manifest.json` at the top, no leading folder), so
the unpacked directory is the artifact itself and `MODEL_DIR=/opt/ml/model` loads it as is. It
holds exactly the files the manifest vouches for, after checking their checksums, and it is
reproducible: members sorted, owner root, fixed modes, every time stamp the artifact's creation
time, nothing of the packing machine in the gzip header. The same artifact always gives the same
bytes, so a re-upload is a no-op and an archive's sha256 identifies the model inside.
"""

from __future__ import annotations

import gzip
import logging
import os
import tarfile
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from common.artifacts import MANIFEST, MANIFEST_SHA, Manifest, read_manifest
from common.errors import ArtifactError
from common.etl import atomic_write

logger = logging.getLogger(__name__)

# World-readable: the serving images run as an unprivileged user, whatever umask unpacks them.
FILE_MODE = 0o644
DIR_MODE = 0o755


def write_model_tarball(
    artifact: Path, out: Path, *, project: str | None = None
) -> tuple[Path, Manifest]:
    """Verify the artifact at `artifact` and write it to `out` as a model.tar.gz.

    Returns `out` and the artifact's manifest. ArtifactError if `artifact` is not an artifact
    directory (of `project`, if given) or fails its checksums; `out` is written atomically, so a
    failure leaves none.
    """
    # An alias that is a symlink packs the version it points at; symlinked files inside are
    # read through, so the archive holds real files.
    source = Path(artifact).resolve()
    if not source.is_dir():
        raise ArtifactError(f"{artifact}: not a directory; give an artifact directory")
    manifest = read_manifest(
        source, project=project
    )  # refuses a non-artifact, a corrupted or edited one
    names = _member_names(source, manifest)
    mtime = int(manifest.created_at.timestamp())
    out = Path(out)
    # GzipFile, not tarfile's "w:gz": that would write the file's name and the current time
    # into the gzip header.
    with (
        atomic_write(out) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for directory in _parents(names):
            tar.addfile(_info(directory, tarfile.DIRTYPE, DIR_MODE, mtime))
        for name in names:
            with open(source / name, "rb") as fh:
                info = _info(name, tarfile.REGTYPE, FILE_MODE, mtime)
                info.size = os.fstat(fh.fileno()).st_size
                tar.addfile(info, fh)
    logger.info(
        "packed %s %s (%d files) into %s", manifest.project, manifest.version, len(names), out
    )
    return out, manifest


def read_tarball_manifest(tarball: Path, *, project: str | None = None) -> Manifest:
    """The manifest at the root of a model.tar.gz (of `project`, if given), without unpacking
    the rest."""
    manifest = _tarball_manifest(tarball)
    if project is not None and manifest.project != project:
        raise ArtifactError(f"{tarball}: holds a {manifest.project!r} model, not a {project!r} one")
    return manifest


def _tarball_manifest(tarball: Path) -> Manifest:
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            member = tar.getmember(MANIFEST)
            fh = tar.extractfile(member)
            if fh is None:
                raise KeyError(MANIFEST)
            return Manifest.model_validate_json(fh.read())
    except FileNotFoundError as exc:
        raise ArtifactError(f"{tarball}: no such file") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{tarball}: not a gzipped tarball ({exc})") from exc
    except KeyError as exc:
        raise ArtifactError(
            f"{tarball}: no {MANIFEST} at the archive's root; make it with "
            "`python -m common.deploy sagemaker package ARTIFACT`"
        ) from exc
    except (ValidationError, ValueError) as exc:
        raise ArtifactError(f"{tarball}: {MANIFEST} is corrupted: {exc}") from exc


def _member_names(source: Path, manifest: Manifest) -> list[str]:
    """The manifest, its checksum and every file the manifest lists, sorted."""
    listed = set(manifest.files)
    for name in listed:
        # The names become archive paths: one climbing out would unpack outside the model dir.
        parts = PurePosixPath(name).parts
        if PurePosixPath(name).is_absolute() or ".." in parts or not parts:
            raise ArtifactError(f"{source}: {MANIFEST} lists an unsafe file name {name!r}")
    names = sorted({MANIFEST, MANIFEST_SHA, *listed})
    # Files added after publishing (say, a notes file) carry no checksum: they are left out.
    present = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    if unlisted := sorted(present - set(names)):
        shown = ", ".join(unlisted[:5]) + (f" and {len(unlisted) - 5} more" if unlisted[5:] else "")
        logger.warning("%s: left out, not in %s: %s", source, MANIFEST, shown)
    return names


def _parents(names: list[str]) -> list[str]:
    """Every folder that holds a member, sorted (so a parent comes before its children)."""
    return sorted({p.as_posix() for n in names for p in PurePosixPath(n).parents if p.parts})


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info

"""A versioned, self-describing, tamper-evident store of trained models.

Layout: `<root>/<project>/<version>/` holds whatever the project saves (model in its library's
native format, fitted preprocessing, plots, model card) plus `manifest.json`: provenance (git
commit, data fingerprint, config, seed, package versions), input/output schemas, metrics and the
sha256 of every file. `<root>/<project>/aliases.json` maps names such as `latest` and
`production` to versions; updates to it take a file lock, so a `train` and a `promote` running
at once cannot undo each other's alias.

Publishing is atomic: files are written into a hidden staging folder and renamed into place only
when the manifest is complete, so a crash or a failed run never leaves half an artifact and never
moves an alias. Loading verifies the checksums, so a corrupted or edited artifact is refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from common.errors import ArtifactError
from common.etl import atomic_write

MANIFEST = "manifest.json"
# The manifest holds every other file's checksum; this file holds the manifest's own, so an
# edited or truncated manifest (say, a hand-raised metric) is refused like any other file.
MANIFEST_SHA = "manifest.sha256"
ALIASES = "aliases.json"
# Bumped when the layout or manifest changes in a way old code cannot read.
FORMAT_VERSION = 1


class Manifest(BaseModel):
    """What `manifest.json` holds. `metrics` is nested by split: {"test": {"roc_auc": 0.84}}."""

    # A misspelt field in Draft.info would otherwise vanish silently from the manifest.
    model_config = ConfigDict(extra="forbid")

    format_version: int
    project: str
    version: str
    created_at: datetime
    git_commit: str | None = None
    data_fingerprint: str | None = None
    seed: int | None = None
    config: dict[str, Any] = {}
    package_versions: dict[str, str] = {}
    input_schema: dict[str, Any] = {}
    output_schema: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    files: dict[str, str] = {}

    def metric(self, dotted: str) -> float:
        """A metric by dotted path, e.g. "test.roc_auc"; ArtifactError if absent."""
        value: Any = self.metrics
        for part in dotted.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise ArtifactError(f"{self.project} {self.version}: no metric '{dotted}'")
            value = value[part]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArtifactError(f"{self.project} {self.version}: '{dotted}' is not a number")
        return float(value)


@dataclass
class Draft:
    """An artifact being written. Set manifest fields in `info`; files go under `path`."""

    path: Path
    project: str
    version: str
    info: dict[str, Any] = field(default_factory=dict)
    final_path: Path | None = None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit(cwd: Path | None = None) -> str | None:
    """The current commit (with "-dirty" if the tree has changes), or None outside a checkout."""

    def run(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        commit = run("rev-parse", "HEAD")
        return commit + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(modules: Iterable[str]) -> dict[str, str]:
    """Versions of the given importable modules, plus Python's, for the manifest."""
    versions = {"python": platform.python_version()}
    for name in modules:
        # The installed distribution's metadata first: no import (torch takes seconds, Prophet
        # logs an error without plotly); then the module itself, for a module whose
        # distribution has another name (sklearn is scikit-learn's).
        try:
            versions[name] = importlib.metadata.version(name)
            continue
        except importlib.metadata.PackageNotFoundError:
            pass
        try:
            versions[name] = str(importlib.import_module(name).__version__)
        except (ImportError, AttributeError):
            continue
    return versions


class ArtifactStore:
    """The artifacts of one project under one root."""

    def __init__(self, root: Path, project: str) -> None:
        self.root = Path(root)
        self.project = project
        self.project_dir = self.root / project

    @contextmanager
    def create(self) -> Iterator[Draft]:
        """Yield a Draft to fill; on normal exit publish it and point `latest` at it.

        On an exception the staging folder is removed and nothing else changes.
        """
        now = datetime.now(UTC)
        # Microseconds keep versions made within one second in creation order when sorted.
        version = f"{now:%Y%m%d-%H%M%S-%f}-{uuid.uuid4().hex[:6]}"
        staging = self.project_dir / f".staging-{version}"
        staging.mkdir(parents=True)
        draft = Draft(path=staging, project=self.project, version=version)
        try:
            yield draft
            draft.final_path = self._publish(draft, now)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _publish(self, draft: Draft, created_at: datetime) -> Path:
        if (draft.path / MANIFEST).exists():
            raise ArtifactError(f"{MANIFEST} is written by the store; do not write it yourself")
        files = {
            p.relative_to(draft.path).as_posix(): sha256_file(p)
            for p in sorted(draft.path.rglob("*"))
            if p.is_file()
        }
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            project=self.project,
            version=draft.version,
            created_at=created_at,
            git_commit=git_commit(),
            files=files,
            **draft.info,
        )
        (draft.path / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        (draft.path / MANIFEST_SHA).write_text(sha256_file(draft.path / MANIFEST) + "\n")
        final = self.project_dir / draft.version
        os.rename(draft.path, final)  # atomic on one filesystem
        self.set_alias("latest", draft.version)
        return final

    # -- aliases -------------------------------------------------------------------------------

    def aliases(self) -> dict[str, str]:
        path = self.project_dir / ALIASES
        if not path.exists():
            return {}
        try:
            return dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ArtifactError(f"{path} is corrupted: {exc}") from exc

    def set_alias(self, alias: str, version: str) -> None:
        if not (self.project_dir / version / MANIFEST).exists():
            raise ArtifactError(f"{self.project}: no version {version!r} to alias as {alias!r}")
        # Read-modify-write under an exclusive lock (POSIX flock; released when the file closes).
        with open(self.project_dir / ".aliases.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            aliases = {**self.aliases(), alias: version}
            with atomic_write(self.project_dir / ALIASES) as tmp:
                tmp.write_text(json.dumps(aliases, indent=2) + "\n")

    def versions(self) -> list[str]:
        """Published versions, oldest first (version names sort by creation time)."""
        if not self.project_dir.exists():
            return []
        return sorted(p.name for p in self.project_dir.iterdir() if (p / MANIFEST).is_file())

    # -- loading -------------------------------------------------------------------------------

    def resolve(self, ref: str | Path) -> Path:
        """A directory for a path, an alias (`latest`, `production`) or a version name."""
        candidate = Path(ref)
        if candidate.is_dir() and (candidate / MANIFEST).exists():
            return candidate
        aliases = self.aliases()
        name = aliases.get(str(ref), str(ref))
        if (self.project_dir / name / MANIFEST).exists():
            return self.project_dir / name
        known = ", ".join([*aliases, *self.versions()[-5:]]) or "none yet: train a model first"
        raise ArtifactError(
            f"{self.project}: no artifact {str(ref)!r} in {self.project_dir} (known: {known})"
        )

    def resolve_serving(self, model_dir: Path | None = None) -> Path:
        """What a service or dashboard should load: `model_dir` if given (`MODEL_DIR`), else
        `production` if promoted, else `latest`; ArtifactError if there is none.

        Falls back to `latest` only when nothing was ever promoted: a `production` alias that
        points at a missing version is an error, because silently serving an unreviewed model
        instead of the promoted one is worse than not starting."""
        if model_dir is not None:
            return model_dir
        promoted = self.aliases().get("production")
        if promoted is None:
            return self.resolve("latest")
        if not (self.project_dir / promoted / MANIFEST).exists():
            raise ArtifactError(
                f"{self.project}: alias 'production' points at version {promoted!r}, which is "
                f"not in {self.project_dir}; promote an existing version or set MODEL_DIR"
            )
        return self.project_dir / promoted

    def load(self, ref: str | Path, *, verify: bool = True) -> tuple[Path, Manifest]:
        path = self.resolve(ref)
        return path, read_manifest(path, project=self.project, verify=verify)

    def promote(
        self, ref: str | Path, *, alias: str = "production", gate: Mapping[str, float] | None = None
    ) -> Manifest:
        """Point `alias` at `ref` if it verifies and every metric in `gate` reaches its minimum.

        `gate` maps dotted metric names to minimums, e.g. {"test.roc_auc": 0.75}.
        """
        _, manifest = self.load(ref)
        failures = [
            f"{name} = {manifest.metric(name):.4f} < {minimum}"
            for name, minimum in (gate or {}).items()
            if not manifest.metric(name) >= minimum  # written so that NaN fails the gate
        ]
        if failures:
            raise ArtifactError(
                f"{self.project} {manifest.version} not promoted to {alias!r}: "
                + "; ".join(failures)
            )
        self.set_alias(alias, manifest.version)
        return manifest


def read_manifest(path: Path, *, project: str | None = None, verify: bool = True) -> Manifest:
    """Read and check an artifact's manifest; with `verify`, check every file's sha256 too."""
    path = Path(path)
    if verify and (path / MANIFEST).is_file():
        recorded = (
            (path / MANIFEST_SHA).read_text().strip() if (path / MANIFEST_SHA).is_file() else ""
        )
        if recorded != sha256_file(path / MANIFEST):
            raise ArtifactError(
                f"{path}: artifact is corrupted: {MANIFEST} does not match {MANIFEST_SHA}"
            )
    try:
        manifest = Manifest.model_validate_json((path / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: no {MANIFEST}; not an artifact directory") from exc
    except (ValidationError, ValueError) as exc:
        raise ArtifactError(f"{path}: {MANIFEST} is corrupted: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format {manifest.format_version} is incompatible with this code "
            f"(reads format {FORMAT_VERSION}); retrain or use a matching release"
        )
    if project is not None and manifest.project != project:
        raise ArtifactError(f"{path}: holds a {manifest.project!r} model, not a {project!r} one")
    if verify:
        verify_files(path, manifest)
    return manifest


def verify_files(path: Path, manifest: Manifest) -> None:
    """Raise ArtifactError naming every missing or altered file."""
    problems = []
    for name, expected in manifest.files.items():
        file = path / name
        if not file.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(file) != expected:
            problems.append(f"{name} does not match its checksum")
    if problems:
        raise ArtifactError(f"{path}: artifact is corrupted: " + "; ".join(problems))


def check_compatible(manifest: Manifest, modules: Iterable[str]) -> None:
    """Refuse an artifact saved with a different major version of a model library."""
    modules = list(modules)  # iterated twice below
    installed = package_versions(modules)
    for name in modules:
        saved, now = manifest.package_versions.get(name), installed.get(name)
        if saved and now and saved.split(".")[0] != now.split(".")[0]:
            raise ArtifactError(
                f"{manifest.project} {manifest.version} was saved with {name} {saved}; "
                f"{now} is installed and cannot be trusted to read it. Retrain, or install {name} "
                f"{saved.split('.')[0]}.x"
            )

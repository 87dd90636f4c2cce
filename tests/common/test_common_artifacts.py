"""Unit tests of common.artifacts: atomic publishing, verification on load, aliases, promotion."""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import common.artifacts as artifacts
from common.artifacts import (
    ALIASES,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_SHA,
    ArtifactStore,
    Manifest,
    check_compatible,
    git_commit,
    package_versions,
    read_manifest,
    sha256_file,
)
from common.errors import ArtifactError, UserError

Publish = Callable[..., Path]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_manifest(path: Path, **changes: object) -> None:
    """Rewrite the manifest *and* its checksum, as a genuine artifact of that content would be."""
    data = json.loads((path / MANIFEST).read_text())
    data.update(changes)
    (path / MANIFEST).write_text(json.dumps(data))
    (path / MANIFEST_SHA).write_text(sha256_file(path / MANIFEST))


def fake_manifest(**fields: object) -> Manifest:
    return Manifest(
        format_version=FORMAT_VERSION,
        project="toy",
        version="v1",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        **fields,
    )


# -- publishing ----------------------------------------------------------------------------------


def test_create_publishes_a_version_with_a_manifest(store: ArtifactStore) -> None:
    with store.create() as draft:
        assert draft.path.name.startswith(".staging-")
        (draft.path / "model.txt").write_text("weights")
        (draft.path / "plots").mkdir()
        (draft.path / "plots" / "roc.csv").write_text("0,1\n")
        draft.info.update(seed=7, data_fingerprint="abc", metrics={"test": {"auc": 0.8}})

    final = draft.final_path
    assert final == store.project_dir / draft.version
    assert final.is_dir()
    assert not draft.path.exists()  # the staging folder was renamed into place
    manifest = json.loads((final / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["project"] == "toy"
    assert manifest["version"] == draft.version
    assert manifest["seed"] == 7
    assert manifest["data_fingerprint"] == "abc"
    assert manifest["metrics"] == {"test": {"auc": 0.8}}
    assert manifest["files"] == {
        "model.txt": sha256(final / "model.txt"),
        "plots/roc.csv": sha256(final / "plots" / "roc.csv"),
    }
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert store.aliases() == {"latest": draft.version}
    assert json.loads((store.project_dir / ALIASES).read_text()) == {"latest": draft.version}
    assert store.versions() == [draft.version]


def test_latest_follows_the_newest_version(store: ArtifactStore, publish: Publish) -> None:
    first = publish("v1")
    second = publish("v2")

    assert store.aliases()["latest"] == second.name
    assert store.resolve("latest") == second
    assert set(store.versions()) == {first.name, second.name}


def test_a_failure_inside_create_changes_nothing(store: ArtifactStore, publish: Publish) -> None:
    previous = publish("good model")
    before = sorted(p.name for p in store.project_dir.iterdir())

    with pytest.raises(RuntimeError, match="training blew up"), store.create() as draft:
        (draft.path / "model.txt").write_text("half a model")
        raise RuntimeError("training blew up")

    assert not draft.path.exists()
    assert draft.final_path is None
    assert sorted(p.name for p in store.project_dir.iterdir()) == before  # no staging, no version
    assert store.versions() == [previous.name]
    assert store.aliases() == {"latest": previous.name}
    path, _ = store.load("latest")
    assert (path / "model.txt").read_text() == "good model"


def test_writing_the_manifest_yourself_is_refused(store: ArtifactStore) -> None:
    refused = pytest.raises(ArtifactError, match=r"manifest\.json is written by the store")
    with refused, store.create() as draft:
        (draft.path / MANIFEST).write_text("{}")

    assert store.versions() == []
    assert store.aliases() == {}
    assert list(store.project_dir.iterdir()) == []


def test_versions_of_an_empty_store(tmp_path: Path) -> None:
    assert ArtifactStore(tmp_path / "nothing", "toy").versions() == []


def test_versions_are_sorted_and_ignore_unpublished_folders(store: ArtifactStore) -> None:
    for name in ("20240301-000000-aaaaaa", "20240101-000000-bbbbbb", "20240201-000000-cccccc"):
        (store.project_dir / name).mkdir(parents=True)
        (store.project_dir / name / MANIFEST).write_text("{}")
    (store.project_dir / "20250101-000000-dddddd").mkdir()  # no manifest: not a version

    assert store.versions() == [
        "20240101-000000-bbbbbb",
        "20240201-000000-cccccc",
        "20240301-000000-aaaaaa",
    ]


# -- loading and verification --------------------------------------------------------------------


def test_load_returns_the_path_and_manifest(store: ArtifactStore, publish: Publish) -> None:
    final = publish(metrics={"test": {"auc": 0.9}})

    path, manifest = store.load("latest")

    assert path == final
    assert manifest.project == "toy"
    assert manifest.version == final.name
    assert manifest.metrics == {"test": {"auc": 0.9}}
    assert set(manifest.files) == {"model.txt", "plots/curve.csv"}


def test_load_refuses_a_tampered_file(store: ArtifactStore, publish: Publish) -> None:
    final = publish()
    (final / "model.txt").write_text("weights-v1 but edited")

    with pytest.raises(ArtifactError, match=r"model\.txt does not match its checksum") as excinfo:
        store.load("latest")

    assert str(final) in str(excinfo.value)
    assert isinstance(excinfo.value, UserError)
    # Without verification it loads (e.g. for inspection).
    assert store.load("latest", verify=False)[1].version == final.name


def test_load_refuses_a_missing_file(store: ArtifactStore, publish: Publish) -> None:
    final = publish()
    (final / "plots" / "curve.csv").unlink()

    with pytest.raises(ArtifactError, match=r"plots/curve\.csv is missing"):
        store.load(final.name)


def test_load_names_every_problem(store: ArtifactStore, publish: Publish) -> None:
    final = publish()
    (final / "plots" / "curve.csv").unlink()
    (final / "model.txt").write_text("edited")

    with pytest.raises(ArtifactError) as excinfo:
        store.load(final.name)

    assert "model.txt does not match its checksum" in str(excinfo.value)
    assert "plots/curve.csv is missing" in str(excinfo.value)


@pytest.mark.parametrize("garbage", ["not json at all", "{}", '{"format_version": "one"}'])
def test_load_refuses_a_corrupted_manifest(
    store: ArtifactStore, publish: Publish, garbage: str
) -> None:
    final = publish()
    (final / MANIFEST).write_text(garbage)

    with pytest.raises(ArtifactError, match=r"corrupted: manifest\.json does not match"):
        store.load(final)
    # Even with a matching checksum, a manifest that does not parse is refused by name.
    (final / MANIFEST_SHA).write_text(sha256_file(final / MANIFEST))
    with pytest.raises(ArtifactError, match=r"manifest\.json is corrupted"):
        store.load(final)


def test_load_refuses_a_hand_edited_metric(store: ArtifactStore, publish: Publish) -> None:
    final = publish()
    text = (final / MANIFEST).read_text()
    data = json.loads(text)
    data["metrics"] = {"test": {"roc_auc": 0.99}}
    (final / MANIFEST).write_text(json.dumps(data))

    with pytest.raises(ArtifactError, match=r"manifest\.json does not match manifest\.sha256"):
        store.promote(final, gate={"test.roc_auc": 0.9})
    assert "production" not in store.aliases()


def test_read_manifest_of_a_folder_without_one(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not an artifact directory"):
        read_manifest(tmp_path)


def test_load_refuses_another_format_version(store: ArtifactStore, publish: Publish) -> None:
    final = publish()
    edit_manifest(final, format_version=FORMAT_VERSION + 1)

    with pytest.raises(ArtifactError, match="is incompatible with this code"):
        store.load(final.name)


def test_load_refuses_another_projects_artifact(
    tmp_path: Path, store: ArtifactStore, publish: Publish
) -> None:
    other = ArtifactStore(store.root, "other")
    foreign = publish(target=other)

    with pytest.raises(ArtifactError, match="holds a 'other' model, not a 'toy' one"):
        store.load(foreign)
    # Copied into this project's folder, it is still refused.
    shutil.copytree(foreign, store.project_dir / foreign.name)
    with pytest.raises(ArtifactError, match="holds a 'other' model"):
        store.load(foreign.name)


# -- resolving and aliases -----------------------------------------------------------------------


def test_resolve_by_alias_version_and_path(store: ArtifactStore, publish: Publish) -> None:
    first = publish("v1")
    second = publish("v2")

    assert store.resolve("latest") == second
    assert store.resolve(first.name) == first
    assert store.resolve(first) == first
    assert store.resolve(str(first)) == first


def test_resolve_unknown_ref_lists_known_ones(store: ArtifactStore, publish: Publish) -> None:
    final = publish()

    with pytest.raises(ArtifactError, match="no artifact 'nope'") as excinfo:
        store.resolve("nope")

    assert f"known: latest, {final.name}" in str(excinfo.value)


def test_resolve_in_an_empty_store_says_to_train(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="none yet: train a model first"):
        store.resolve("latest")


def test_set_alias_refuses_an_unknown_version(store: ArtifactStore, publish: Publish) -> None:
    publish()

    with pytest.raises(ArtifactError, match="no version 'nope'"):
        store.set_alias("production", "nope")
    assert set(store.aliases()) == {"latest"}


def test_corrupted_aliases_file_is_an_artifact_error(
    store: ArtifactStore, publish: Publish
) -> None:
    publish()
    (store.project_dir / ALIASES).write_text("{oops")

    with pytest.raises(ArtifactError, match=r"aliases\.json is corrupted"):
        store.aliases()


def test_resolve_serving_refuses_a_production_alias_to_a_missing_version(
    store: ArtifactStore, publish: Publish
) -> None:
    promoted = publish("v1")
    store.set_alias("production", promoted.name)
    publish("v2")  # a newer, unreviewed model that must not be served in its place
    shutil.rmtree(promoted)

    with pytest.raises(ArtifactError, match="alias 'production' points at version") as excinfo:
        store.resolve_serving()

    assert repr(promoted.name) in str(excinfo.value)


def test_promote_with_a_passing_gate_sets_production(
    store: ArtifactStore, publish: Publish
) -> None:
    final = publish(metrics={"test": {"auc": 0.85}})

    manifest = store.promote("latest", gate={"test.auc": 0.8})

    assert manifest.version == final.name
    assert store.aliases() == {"latest": final.name, "production": final.name}
    assert store.resolve("production") == final


def test_promote_with_a_failing_gate_changes_nothing(
    store: ArtifactStore, publish: Publish
) -> None:
    good = publish(metrics={"test": {"auc": 0.85}})
    store.promote(good.name)
    bad = publish(metrics={"test": {"auc": 0.7}})
    before = store.aliases()

    with pytest.raises(ArtifactError, match=r"not promoted to 'production': test\.auc = 0\.7000"):
        store.promote(bad.name, gate={"test.auc": 0.8})

    assert store.aliases() == before
    assert store.resolve("production") == good


def test_promote_with_a_missing_metric_is_refused(store: ArtifactStore, publish: Publish) -> None:
    publish(metrics={"test": {"auc": 0.85}})

    with pytest.raises(ArtifactError, match=r"no metric 'val\.auc'"):
        store.promote("latest", gate={"val.auc": 0.5})
    assert "production" not in store.aliases()


def test_promote_refuses_a_tampered_artifact(store: ArtifactStore, publish: Publish) -> None:
    final = publish()
    (final / "model.txt").write_text("edited")

    with pytest.raises(ArtifactError, match="does not match its checksum"):
        store.promote("latest", alias="staging")
    assert "staging" not in store.aliases()


# -- Manifest ------------------------------------------------------------------------------------


def test_manifest_metric_dotted_lookup() -> None:
    manifest = fake_manifest(metrics={"test": {"auc": 0.84, "n": 3}, "train_seconds": 12})

    assert manifest.metric("test.auc") == 0.84
    assert manifest.metric("test.n") == 3.0
    assert isinstance(manifest.metric("test.n"), float)
    assert manifest.metric("train_seconds") == 12.0


@pytest.mark.parametrize("name", ["val.auc", "test.f1", "test.auc.extra", ""])
def test_manifest_metric_missing(name: str) -> None:
    manifest = fake_manifest(metrics={"test": {"auc": 0.84}})

    with pytest.raises(ArtifactError, match=re.escape(f"toy v1: no metric '{name}'")):
        manifest.metric(name)


def test_manifest_metric_on_a_group_is_an_artifact_error() -> None:
    manifest = fake_manifest(metrics={"test": {"auc": 0.84}})

    with pytest.raises(ArtifactError, match="'test' is not a number"):
        manifest.metric("test")


# -- compatibility and provenance ----------------------------------------------------------------


def test_check_compatible_refuses_another_major_version() -> None:
    manifest = fake_manifest(package_versions={"numpy": "1.0"})
    assert not np.__version__.startswith("1.")

    with pytest.raises(ArtifactError, match=r"saved with numpy 1\.0") as excinfo:
        check_compatible(manifest, ["numpy"])

    assert f"{np.__version__} is installed" in str(excinfo.value)
    assert "install numpy 1.x" in str(excinfo.value)


def test_check_compatible_accepts_the_same_major_version() -> None:
    major = np.__version__.split(".")[0]
    manifest = fake_manifest(package_versions={"numpy": f"{major}.0.0"})

    try:
        check_compatible(manifest, ["numpy"])
    except ArtifactError as exc:
        pytest.fail(f"refused an artifact saved with the same major version: {exc}")


def test_check_compatible_ignores_libraries_not_recorded_or_not_installed() -> None:
    manifest = fake_manifest(package_versions={"not_a_real_module_xyz": "9.0"})

    try:
        check_compatible(manifest, ["numpy", "not_a_real_module_xyz"])
    except ArtifactError as exc:
        pytest.fail(f"refused over a library it cannot compare: {exc}")


def test_check_compatible_with_a_generator_of_modules() -> None:
    manifest = fake_manifest(package_versions={"numpy": "1.0"})

    with pytest.raises(ArtifactError, match=r"saved with numpy 1\.0"):
        check_compatible(manifest, (name for name in ["numpy"]))


def test_package_versions_includes_python() -> None:
    versions = package_versions(["numpy", "not_a_real_module_xyz"])

    assert versions == {"python": platform.python_version(), "numpy": np.__version__}


def test_git_commit_outside_a_checkout_is_none(tmp_path: Path) -> None:
    assert git_commit(cwd=tmp_path) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_in_a_checkout(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one")
    git("add", "a.txt")
    git("commit", "-q", "-m", "first")

    commit = git_commit(cwd=tmp_path)
    assert commit is not None
    assert len(commit) == 40
    (tmp_path / "a.txt").write_text("two")
    assert git_commit(cwd=tmp_path) == f"{commit}-dirty"


def test_versions_published_in_the_same_second_sort_oldest_first(
    store: ArtifactStore, publish: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    ticks = iter(range(1000))
    hexes = iter(range(1000, 0, -1))  # random parts that happen to come out descending

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return start + timedelta(milliseconds=next(ticks))

    monkeypatch.setattr(artifacts, "datetime", Clock)
    monkeypatch.setattr(artifacts.uuid, "uuid4", lambda: uuid.UUID(int=next(hexes) << 104))

    created = [publish(f"v{i}").name for i in range(3)]

    assert store.versions() == created


def test_gate_refuses_a_nan_metric(store: ArtifactStore, publish: Publish) -> None:
    # NaN is written to JSON as null, which reads back as no number at all: refused either way.
    final = publish(metrics={"test": {"roc_auc": float("nan")}})
    with pytest.raises(ArtifactError, match=r"'test\.roc_auc' is not a number"):
        store.promote(final, gate={"test.roc_auc": 0.5})
    assert "production" not in store.aliases()


def _set_aliases(root: str, prefix: str, version: str, n: int) -> None:
    store = ArtifactStore(Path(root), "toy")
    for i in range(n):
        store.set_alias(f"{prefix}{i}", version)


def test_concurrent_alias_updates_lose_nothing(store: ArtifactStore, publish: Publish) -> None:
    """Two processes updating aliases at once (a train and a promote) keep each other's work."""
    import multiprocessing

    version = publish().name
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_set_aliases, args=(str(store.root), prefix, version, 40))
        for prefix in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    aliases = store.aliases()
    assert {f"{p}{i}" for p in "ab" for i in range(40)} <= set(aliases)

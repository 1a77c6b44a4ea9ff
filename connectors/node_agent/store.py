"""The checkpoint store: where an agent puts a workload's checkpoint and results, and where another agent fetches it.

A checkpoint directory is packed into one tar archive with normalised metadata (sorted names, no times, no owners),
so its sha256 depends on its contents alone. Locations are URLs: ``file:///srv/checkpoints/<workload>/<name>.tar``
today (a directory on a disk every agent can reach: local, NFS, a mounted bucket), an object store's URL later,
behind the same two verbs. The sha256 travels with the location as its fragment (``…tar#sha256=<hex>``), so the
resume command carries what the fetched bytes must hash to, whichever way it was routed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

CHUNK = 1 << 20
SHA256_FRAGMENT = "sha256="


class CheckpointError(RuntimeError):
    """A checkpoint could not be stored or fetched (the reason says which and why)."""


class ChecksumMismatch(CheckpointError):
    """The fetched bytes do not hash to the sha256 the checkpoint was stored with."""


@dataclass(frozen=True)
class StoredObject:
    uri: str  # location with ``#sha256=`` fragment
    sha256: str
    size_bytes: int
    seconds: float  # to pack, hash and write it


@dataclass(frozen=True)
class FetchedCheckpoint:
    path: Path  # the unpacked checkpoint directory
    sha256: str
    size_bytes: int
    seconds: float  # to fetch, verify and unpack it
    manifest: dict[str, Any]  # what the storing agent wrote beside it ({} when absent)


def with_sha256(location: str, sha256: str) -> str:
    return f"{location}#{SHA256_FRAGMENT}{sha256}"


def split_uri(uri: str) -> tuple[str, str | None]:
    """(location, expected sha256 or None) of a checkpoint URI."""
    location, _, fragment = uri.partition("#")
    expected = fragment[len(SHA256_FRAGMENT) :] if fragment.startswith(SHA256_FRAGMENT) else None
    return location, expected


class CheckpointStore(Protocol):
    def put_checkpoint(self, workload_id: str, name: str, source: Path, manifest: dict[str, Any]) -> StoredObject: ...

    def fetch_checkpoint(self, uri: str, dest: Path) -> FetchedCheckpoint: ...

    def put_file(self, workload_id: str, name: str, source: Path) -> StoredObject: ...


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.target.write(data)


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def pack(source: Path, out: BinaryIO) -> tuple[str, int]:
    """Write ``source``'s files (regular files and directories only) as a tar stream; returns (sha256, bytes)."""
    writer = _HashingWriter(out)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for path in sorted(source.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue  # a checkpoint is data: links and devices are not part of it
            tar.add(path, arcname=str(path.relative_to(source)), recursive=False, filter=_normalised)
    return writer.hash.hexdigest(), writer.size


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class FileCheckpointStore:
    """Checkpoints under a directory: ``<root>/<workload>/<name>.tar`` and its manifest ``<name>.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _location(self, path: Path) -> str:
        return path.resolve().as_uri()

    def _path(self, uri: str) -> Path:
        location, _ = split_uri(uri)
        parts = urlsplit(location)
        if parts.scheme != "file":
            raise CheckpointError(f"{location!r} is not in this store (a file:// store under {self.root})")
        path = Path(unquote(parts.path))
        if self.root.resolve() not in path.resolve().parents:
            raise CheckpointError(f"{location!r} lies outside the checkpoint store {self.root}")
        return path

    def put_checkpoint(self, workload_id: str, name: str, source: Path, manifest: dict[str, Any]) -> StoredObject:
        started = time.monotonic()
        folder = self.root / workload_id
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{name}.tar"
        partial = folder / f"{name}.tar.partial"
        with partial.open("wb") as fh:
            sha256, size = pack(source, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, final)
        manifest = {**manifest, "sha256": sha256, "bytes": size}
        (folder / f"{name}.json").write_text(json.dumps(manifest, sort_keys=True))
        return StoredObject(with_sha256(self._location(final), sha256), sha256, size, time.monotonic() - started)

    def fetch_checkpoint(self, uri: str, dest: Path) -> FetchedCheckpoint:
        started = time.monotonic()
        source = self._path(uri)
        _, expected = split_uri(uri)
        manifest_path = source.with_suffix(".json")
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        expected = expected or manifest.get("sha256")
        if expected is None:
            raise CheckpointError(f"{uri}: no sha256 to check it against (neither in the URI nor in a manifest)")
        if not source.exists():
            raise CheckpointError(f"{uri}: no checkpoint at {source}")
        dest.mkdir(parents=True, exist_ok=True)
        local = dest.with_name(dest.name + ".tar")
        with source.open("rb") as src, local.open("wb") as dst:
            writer = _HashingWriter(dst)
            shutil.copyfileobj(src, writer, CHUNK)
        if writer.hash.hexdigest() != expected:
            local.unlink()
            raise ChecksumMismatch(
                f"checkpoint {source.name} hashes to {writer.hash.hexdigest()}, not the {expected} it was stored with"
            )
        shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with tarfile.open(local) as tar:
            tar.extractall(dest, filter="data")
        local.unlink()
        return FetchedCheckpoint(dest, expected, writer.size, time.monotonic() - started, manifest)

    def put_file(self, workload_id: str, name: str, source: Path) -> StoredObject:
        started = time.monotonic()
        folder = self.root / workload_id
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / name
        partial = folder / f"{name}.partial"
        shutil.copyfile(source, partial)
        os.replace(partial, final)
        sha256, size = sha256_file(final)
        return StoredObject(with_sha256(self._location(final), sha256), sha256, size, time.monotonic() - started)


def open_store(url: str) -> CheckpointStore:
    """The store a ``--checkpoint-store`` value names: ``file:///path`` or a plain path."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return FileCheckpointStore(Path(unquote(parts.path) if parts.scheme else url).expanduser())
    raise CheckpointError(
        f"checkpoint store {url!r}: only file:// stores (a directory every agent can reach) are supported so far"
    )

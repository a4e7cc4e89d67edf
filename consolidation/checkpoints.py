"""Checkpoint registry: `checkpoints/<version>/` holds a LoRA adapter and `manifest.json`.

Writes are transactional: the adapter and then the manifest go into a temporary directory, which is
renamed into place in one atomic step. A crash at any point leaves the previous state usable, and a
half-written checkpoint is never listed.

Policy r is the base model with the adapters of its promoted lineage merged in order, root first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from oel.errors import OELError
from oel.files import write_atomic

MANIFEST = "manifest.json"
VERSION = re.compile(r"^v[1-9][0-9]{0,5}$")
REQUIRED = ("version", "parent", "status", "round", "knowledge_ids", "dataset", "eval")
"""Manifest keys every reader relies on."""


class Registry:
    """A run's checkpoints. Opening one checks it (`check`) and clears what a killed write left behind."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._clear_stale_writes()
        self.check()

    def _clear_stale_writes(self) -> None:
        """Remove `.tmp-v<n>-<pid>` directories of writers that are gone (a kill during `write`)."""
        for tmp in self.root.glob(".tmp-*") if self.root.is_dir() else []:
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if VERSION.match(p.name) and (p / MANIFEST).is_file()]
        return sorted(found, key=lambda v: int(v[1:]))

    def check(self) -> None:
        """Refuse a registry that was left incomplete (a checkpoint directory without its manifest, or a
        manifest without the keys readers need), with one line saying how to repair it: going on would
        train with the wrong parent and then collide with the stray directory."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.iterdir()):
            if not VERSION.match(path.name):
                continue
            if not (path / MANIFEST).is_file():
                raise OELError(f"checkpoint {path} has no {MANIFEST} (copied or damaged by hand?): move that directory "
                               f"out of {self.root}, then run again")
            missing = [k for k in REQUIRED if k not in self.manifest(path.name)]
            if missing:
                raise OELError(f"checkpoint manifest {path / MANIFEST} lacks {', '.join(missing)}: restore it from a "
                               f"backup, or move {path} out of {self.root}")

    def next_version(self) -> str:
        taken = [int(p.name[1:]) for p in self.root.iterdir() if VERSION.match(p.name)] if self.root.is_dir() else []
        return f"v{max(taken, default=0) + 1}"

    def _dir(self, version: str) -> Path:
        """A version's directory. Versions are names inside this registry (`v<n>`), never paths: a path could
        reach another run's checkpoints."""
        if not isinstance(version, str) or not VERSION.match(version):
            raise OELError(f"checkpoint version {version!r} is not a name like v1 in this run's registry; "
                           "see `oel checkpoints list`")
        return self.root / version

    def manifest(self, version: str) -> dict:
        path = self._dir(version) / MANIFEST
        if not path.is_file():
            raise OELError(f"no checkpoint {version!r} in {self.root}; see `oel checkpoints list`")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise OELError(f"checkpoint manifest {path} is corrupt: {err}") from None

    def manifests(self) -> list[dict]:
        return [self.manifest(v) for v in self.versions()]

    def current(self) -> str | None:
        """The newest promoted version, or None for the base model."""
        promoted = [m["version"] for m in self.manifests() if m["status"] == "promoted"]
        return promoted[-1] if promoted else None

    def lineage(self, version: str | None) -> list[Path]:
        """Adapter directories to merge, root first, to rebuild the policy of `version`."""
        chain = []
        while version:
            chain.append(self._dir(version))
            version = self.manifest(version)["parent"]
        return chain[::-1]

    def write(self, adapter_dir: str | Path, manifest: dict) -> Path:
        """Copy an adapter in and write its manifest, atomically. Returns the checkpoint directory."""
        version = manifest["version"]
        final = self._dir(version)
        if final.exists():
            raise OELError(f"checkpoint {version} already exists in {self.root}")
        tmp = self.root / f".tmp-{version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(adapter_dir, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, final)
        return final

    def set_status(self, version: str, status: str, **fields) -> None:
        """Rewrite a manifest's status (and any `fields` given) atomically (write temp file, then rename)."""
        manifest = self.manifest(version)
        manifest.update(status=status, **fields)
        write_atomic(self._dir(version) / MANIFEST, json.dumps(manifest, indent=2))

    def descendants(self, versions: set[str]) -> set[str]:
        """`versions` and every checkpoint trained on top of one of them (their weights hold its adapter)."""
        found = set(versions)
        for m in self.manifests():  # oldest first: a parent is always older than its children
            if m["parent"] in found:
                found.add(m["version"])
        return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

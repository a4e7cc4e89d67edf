"""Checkpoint registry: `checkpoints/<version>/` holds a LoRA adapter and `manifest.json`.

Writes are transactional: the adapter and then the manifest go into a temporary directory, which is
renamed into place in one atomic step. A crash at any point leaves the previous state usable, and a
half-written checkpoint is never listed.

Policy r is the base model with the adapters of its promoted lineage merged in order, root first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from oel.errors import OELError
from oel.files import write_atomic

MANIFEST = "manifest.json"


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if (p / MANIFEST).is_file() and not p.name.startswith(".")]
        return sorted(found, key=lambda v: int(v.lstrip("v")) if v.lstrip("v").isdigit() else 0)

    def next_version(self) -> str:
        return f"v{len(self.versions()) + 1}"

    def manifest(self, version: str) -> dict:
        path = self.root / version / MANIFEST
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
            chain.append(self.root / version)
            version = self.manifest(version)["parent"]
        return chain[::-1]

    def write(self, adapter_dir: str | Path, manifest: dict) -> Path:
        """Copy an adapter in and write its manifest, atomically. Returns the checkpoint directory."""
        version = manifest["version"]
        final = self.root / version
        if final.exists():
            raise OELError(f"checkpoint {version} already exists in {self.root}")
        tmp = self.root / f".tmp-{version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(adapter_dir, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, final)
        return final

    def set_status(self, version: str, status: str) -> None:
        """Rewrite one manifest field atomically (write temp file, then rename)."""
        manifest = self.manifest(version)
        manifest["status"] = status
        write_atomic(self.root / version / MANIFEST, json.dumps(manifest, indent=2))

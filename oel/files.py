"""Writing small files (settings, manifests, caches, exports) so that a crash never leaves half of one."""

from __future__ import annotations

import os
from pathlib import Path

from oel.errors import OELError


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it and an atomic rename: a reader, or a run
    resumed after a crash, sees either the old file or the new one, never a mix."""
    path = Path(path)
    if path.is_dir():
        raise OELError(f"{path} is a directory; give a file name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)  # no litter beside the file
        raise OELError(f"cannot write {path}: {err.strerror or err}") from None

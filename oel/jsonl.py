"""Reading the project's JSONL logs (episodes, round rows, teacher evaluations, memory exports)."""

from __future__ import annotations

import json
from pathlib import Path

from oel.errors import OELError


def read_jsonl(path: Path, missing_ok: bool = True) -> list[dict]:
    """The rows of a JSONL file; [] if it does not exist (and `missing_ok`).

    Logs are appended one line at a time, so a process killed mid-write can leave a last line without its
    newline: that line is skipped here, and moved aside by the next `open_append`.
    Any other line that is not JSON is a one-line error naming the file and line, never a traceback.
    """
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return []
        raise OELError(f"file not found: {path}")
    text = path.read_text()
    lines = text.split("\n")
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if n == len(lines) and not text.endswith("\n"):
                continue  # cut off by a crash while it was written
            raise OELError(f"{path} line {n} is not JSON ({err.msg}); fix or remove that line") from None
    return rows


def open_append(path: Path):
    """Open a JSONL log for appending. A last line left unfinished by a crash is first moved to
    `<name>.partial` beside the log (kept, not deleted), so the log stays readable and the next row starts
    on its own line."""
    path = Path(path)
    try:
        return _open_append(path)
    except OSError as err:
        raise OELError(f"cannot write {path}: {err.strerror or err}") from None


def _open_append(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size:
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with path.with_name(path.name + ".partial").open("ab") as side:
                side.write(data[cut:] + b"\n")
            with path.open("r+b") as f:
                f.truncate(cut)
    return path.open("a")

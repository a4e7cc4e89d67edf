"""The JSONL logs survive a crash mid-write, and a corrupt line is a one-line error."""

import json

import pytest

from oel.errors import OELError
from oel.jsonl import open_append, read_jsonl


def test_line_cut_off_by_a_crash_is_skipped_and_the_next_row_starts_clean(tmp_path):
    path = tmp_path / "reports" / "rounds.jsonl"
    with open_append(path) as f:  # creates the folder
        f.write(json.dumps({"round": 0}) + "\n")
    with path.open("a") as f:
        f.write('{"round": 1, "succ')  # the process died here
    assert read_jsonl(path) == [{"round": 0}]
    with open_append(path) as f:  # a resumed run appends again
        f.write(json.dumps({"round": 1}) + "\n")
    assert read_jsonl(path) == [{"round": 0}, {"round": 1}]
    assert (tmp_path / "reports" / "rounds.jsonl.partial").read_text() == '{"round": 1, "succ\n'  # kept aside


def test_corrupt_line_is_a_one_line_error(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(OELError, match=r"log.jsonl line 2 is not JSON"):
        read_jsonl(path)


def test_missing_file(tmp_path):
    assert read_jsonl(tmp_path / "nope.jsonl") == []
    with pytest.raises(OELError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl", missing_ok=False)

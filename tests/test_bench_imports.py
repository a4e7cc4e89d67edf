"""Every bench module imports and has a `main`: a bench that no test runs end to end still breaks here when a
name it imports is renamed (bench/topk.py imported `teacher_messages` for weeks after it was folded into
`agent.prompts.with_context`)."""

import importlib
import pkgutil

import pytest

import bench

SHARED = {"arms", "common"}  # helpers of the other benches, not benches themselves
BENCHES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name not in SHARED)


def test_the_benches_are_found():
    assert {"learning", "rollout", "topk", "teacher"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_bench_imports_and_has_main(name):
    module = importlib.import_module(f"bench.{name}")
    assert callable(getattr(module, "main", None)), f"bench/{name}.py has no main()"

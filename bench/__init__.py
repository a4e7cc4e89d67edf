"""Benchmarks. Each runs as a module from the repository root, e.g. `.venv/bin/python -m bench.learning`, prints
its figures and writes them under bench/results/ (and, for some, a section of docs/RESULTS.md).

Shared parts: `oel.stats` (intervals and paired tests), `bench.common` (`--set` options, docs sections, the
machine, evaluation summaries), `bench.arms` (the learning bench's loop arms, also run by `bench.ood`)."""

import oel  # noqa: F401  (offline settings, before any model library is imported)

"""The per-round report: a table for the terminal and a PNG learning curve."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from consolidation.checkpoints import Registry
from oel.jsonl import read_jsonl
from oel.rundir import RunDir
from oel.stats import interval

COLUMNS = [("round", "round"), ("policy", "policy"), ("success_no_memory", "test success, no memory"),
           ("validation", "validation"), ("steps", "steps/ep"), ("tokens_per_episode", "tokens/ep"),
           ("memory_active", "mem active"), ("memory_consolidated", "mem consolidated"),
           ("memory_quarantined", "mem quarantined"), ("gate", "gate")]


def read_rounds(run_dir: Path) -> list[dict]:
    return read_jsonl(RunDir(run_dir).rounds)


TITLE = ("Online experiential learning, per round (policy without memory; the gate decides on the validation games, "
         "the test games decide nothing)")


def round_columns(rows: list[dict]) -> list[tuple[str, str]]:
    """(key, title) of the report's columns for these rows: the terminal table and the inspector page show
    the same ones."""
    columns = list(COLUMNS)
    if any("success_in_context" in row for row in rows):  # the run evaluated each round's teacher
        columns.insert(3, ("success_in_context", "teacher (experience in prompt)"))
    return columns


def round_cells(row: dict, columns: list[tuple[str, str]]) -> list[str]:
    """One round's row of the report, as text."""
    cells = []
    for key, _ in columns:
        value = row.get(key, "")
        if key == "success_no_memory":
            value = f"{value:.0%} {span(row.get('ci95', 0), value)} (n={row.get('n_games', '?')})"
        elif key == "validation":  # runs made before the split have none
            value = f"{value['success_no_memory']:.0%} (n={value['n_games']})" if value else "-"
        elif key == "success_in_context" and value != "":
            value = f"{value:.0%} {span(row.get('in_context_ci95', 0), value)}"
        elif isinstance(value, float):
            value = f"{value:.1f}"
        cells.append(str(value))
    return cells


def rounds_table(rows: list[dict]) -> Table:
    table = Table(title=TITLE)
    columns = round_columns(rows)
    for _, title in columns:
        table.add_column(title, justify="right")
    for row in rows:
        table.add_row(*round_cells(row, columns))
    return table


def span(ci95: float | list[float], success: float) -> str:
    low, high = interval(ci95, success)
    return f"[{low:.0%}, {high:.0%}]"


def errors(rows: list[dict], key: str, ci_key: str) -> list[list[float]]:
    """Matplotlib's asymmetric error bars (in points) for the rows' intervals."""
    spans = [interval(r[ci_key], r[key]) for r in rows]
    return [[100 * (r[key] - low) for r, (low, _) in zip(rows, spans)],
            [100 * (high - r[key]) for r, (_, high) in zip(rows, spans)]]


def plot_rounds(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes[0].errorbar(rounds, [100 * r["success_no_memory"] for r in rows], yerr=errors(rows, "success_no_memory", "ci95"),
                     marker="o", capsize=4, label="policy, no memory")
    teacher = [r for r in rows if "success_in_context" in r]
    if teacher:
        axes[0].errorbar([r["round"] for r in teacher], [100 * r["success_in_context"] for r in teacher],
                         yerr=errors(teacher, "success_in_context", "in_context_ci95"), marker="s", capsize=4, linestyle="--",
                         label="teacher (experience in prompt)")
        axes[0].legend(fontsize=8)
    axes[0].set(title="Test success, no memory", xlabel="round", ylabel="% games won", ylim=(-5, 105))
    axes[1].plot(rounds, [r["steps"] for r in rows], marker="o")
    # Axes start at 0 so small changes are not drawn as dramatic ones.
    axes[1].set(title="Steps per episode", xlabel="round", ylim=(0, 1.15 * max(r["steps"] for r in rows) + 0.1))
    axes[2].plot(rounds, [r["tokens_per_episode"] for r in rows], marker="o")
    axes[2].set(title="Generated tokens per episode", xlabel="round",
                ylim=(0, 1.15 * max(r["tokens_per_episode"] for r in rows) + 0.1))
    for ax in axes:
        ax.set_xticks(rounds)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TRAINING_METRICS = [("loss", "loss"), ("completions/mean_length", "response tokens"),
                    ("completions/valid_fraction", "samples that are commands")]
"""What a consolidation's per-step training log shows (`consolidation.distill`): the loss (the reverse
KL(student || teacher) for `choices` and `tokens`, cross-entropy for `sft`); in generate mode also the
student's mean sampled response length and the fraction of its samples that ground to a command."""


def training_trend(log: list[dict], key: str) -> tuple[float, float] | None:
    """The metric's mean over the first and over the last quarter of the steps (one step is noisy: a
    batch holds a few prefixes), or None if the log never recorded it."""
    values = [row[key] for row in log if "step" in row and isinstance(row.get(key), (int, float))]
    if not values:
        return None
    quarter = max(1, len(values) // 4)
    return sum(values[:quarter]) / quarter, sum(values[-quarter:]) / quarter


def training_table(manifests: list[dict]) -> Table | None:
    """One row per consolidation: its method, steps, and each metric's start -> end; None if no manifest
    holds a training log."""
    rows = [m for m in manifests if (m.get("training") or {}).get("log")]
    if not rows:
        return None
    shown = [(key, title) for key, title in TRAINING_METRICS
             if any(training_trend(m["training"]["log"], key) for m in rows)]
    table = Table(title="Consolidations (start -> end: means over the first and last quarter of the steps; "
                        "the loss is the reverse KL, or cross-entropy for sft)")
    for title in ("checkpoint", "status", "method", "steps", *(t for _, t in shown)):
        table.add_column(title, justify="right")
    for m in rows:
        log = m["training"]["log"]
        cells = []
        for key, _ in shown:
            trend = training_trend(log, key)
            fmt = "{:.0%}" if key.endswith("fraction") else "{:.3g}"
            cells.append(f"{fmt.format(trend[0])} -> {fmt.format(trend[1])}" if trend else "-")
        table.add_row(m["version"], m["status"], m["training"].get("method", "?"),
                      str(sum(1 for row in log if "loss" in row)), *cells)
    return table


def print_report(run_dir: Path, console: Console | None = None) -> Path | None:
    """Print the tables and write the PNG; None (and nothing printed: the caller says why) with no rounds."""
    console = console or Console()
    rows = read_rounds(run_dir)
    if not rows:
        return None
    console.print(rounds_table(rows))
    checkpoints = RunDir(run_dir).checkpoints
    if checkpoints.is_dir() and (training := training_table(Registry(checkpoints).manifests())) is not None:
        console.print(training)
    png = RunDir(run_dir).learning_curve
    try:
        plot_rounds(rows, png)
    except OSError as err:  # a read-only run directory: the table is what was asked for
        console.print(f"learning curve not written to {png}: {err.strerror or err}")
    else:
        console.print(f"learning curve: {png}")
    return png

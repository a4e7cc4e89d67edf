"""The report's consolidation table, from manifests' training logs (`consolidation.report`)."""

from rich.console import Console

from consolidation.report import training_table, training_trend


def log(losses, lengths=None, valid=None):
    rows = []
    for step, loss in enumerate(losses, 1):
        row = {"step": step, "loss": loss}
        if lengths:
            row["completions/mean_length"] = lengths[step - 1]
        if valid:
            row["completions/valid_fraction"] = valid[step - 1]
        rows.append(row)
    return rows + [{"step": len(losses), "train_runtime": 1.0}]  # the trainer's closing summary row


def test_trend_is_the_mean_of_the_first_and_last_quarter_of_the_steps():
    assert training_trend(log([4.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]), "loss") == (3.0, 0.5)
    assert training_trend(log([1.0]), "loss") == (1.0, 1.0)
    assert training_trend(log([1.0, 2.0]), "completions/valid_fraction") is None


def test_table_shows_generate_mode_figures_only_where_logged():
    manifests = [{"version": "v1", "status": "promoted", "training": {"method": "choices", "log": log([0.4] * 4)}},
                 {"version": "v2", "status": "rejected", "training": {"method": "tokens",
                  "log": log([0.8, 0.6, 0.4, 0.2], lengths=[30, 25, 20, 12], valid=[0.25, 0.5, 0.5, 1.0])}},
                 {"version": "v3", "status": "promoted"}]  # a manifest with no training log is left out
    console = Console(width=200, record=True)
    console.print(training_table(manifests))
    text = console.export_text()
    assert "v1" in text and "v2" in text and "v3" not in text
    assert "30 -> 12" in text and "25% -> 100%" in text and "0.8 -> 0.2" in text
    assert training_table([{"version": "v1", "status": "promoted"}]) is None

"""Learning: distil memory into weights (on-policy context distillation), gate, promote, prune, loop."""

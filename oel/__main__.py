"""`python -m oel ...` is the `oel` command (for machines where the package is on PYTHONPATH, not installed)."""

from oel.cli import main

main()

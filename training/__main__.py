"""`python -m training ...`: train, evaluate and export VAEs (see training/README.md)."""

from training.cli import app

app()

"""Command-line arguments for searches small enough for tests: digits, tiny chains, one epoch."""

TINY_SEARCH = ["--dataset", "digits", "--epochs", "1", "--filters", "4,8", "--max-layers", "3", "--no-progress"]

"""``python -m optuna_nas.cli``: the same as the ``optuna-nas`` command."""

import sys

from optuna_nas.cli import main

sys.exit(main())

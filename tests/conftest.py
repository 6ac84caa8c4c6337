from __future__ import annotations

import optuna
import pytest

pytest.register_assert_rewrite("optuna.testing.pytest_samplers")
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="session")
def digits():
    from optuna_nas import data

    return data.load("digits")

from __future__ import annotations

import optuna
import pytest

pytest.register_assert_rewrite("optuna.testing.pytest_samplers")
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="session")
def digits():
    from optuna_nas import data

    return data.load("digits")


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory):
    """One local MLflow store for the session (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"

import subprocess
import sys


def test_import_does_not_import_torch():
    code = (
        "import sys, optuna_nas, optuna_nas.spaces, optuna_nas.samplers, optuna_nas.objectives, "
        "optuna_nas.cli, optuna_nas.analysis; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

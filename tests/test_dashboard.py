"""The real optuna-dashboard server, started by ``optuna-nas dashboard``, and a real browser."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from _search_args import TINY_SEARCH

from optuna_nas.cli import main


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'nas.db'}"
    artifacts = str(folder / "artifacts")
    assert (
        main(
            [
                "search",
                "--storage",
                url,
                "--study-name",
                "digits-nas",
                "--sampler",
                "evolution",
                "--n-trials",
                "4",
                "--no-mlflow",
                "--artifact-dir",
                artifacts,
                *TINY_SEARCH,
            ]
        )
        == 0
    )
    port = _free_port()
    server = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "optuna-nas"),
            "dashboard",
            "--storage",
            url,
            "--port",
            str(port),
            "--artifact-dir",
            artifacts,
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            _get(base + "/api/studies")
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail(f"optuna-dashboard did not start: {server.stdout.read().decode()[-2000:]}")
    yield base, folder
    server.terminate()
    server.wait(timeout=10)


def test_dashboard_serves_the_study_its_trials_and_pareto_front(dashboard):
    base, _ = dashboard
    summaries = _get(base + "/api/studies")["study_summaries"]
    study = next(s for s in summaries if s["study_name"] == "digits-nas")
    detail = _get(f"{base}/api/studies/{study['study_id']}")
    assert detail["name"] == "digits-nas"
    assert detail["directions"] == ["maximize", "minimize", "minimize"]
    assert detail["objective_names"] == ["accuracy", "params", "flops"]
    assert len(detail["trials"]) == 4
    assert 1 <= len(detail["best_trials"]) <= 4
    trial = detail["trials"][0]
    assert {a["key"] for a in trial["user_attrs"]} >= {"architecture", "spec_hash", "params", "flops"}
    assert {a["filename"] for a in trial["artifacts"]} == {"weights.npz", "network.png"}


def test_dashboard_page_renders_in_a_real_browser(dashboard, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    base, _ = dashboard
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--window-size=1280,900",
    ]
    page = f"{base}/dashboard"
    dom = subprocess.run([chromium, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert "digits-nas" in dom.stdout
    screenshot = tmp_path / "dashboard.png"  # kept in the test's temporary folder
    subprocess.run([chromium, *flags, f"--screenshot={screenshot}", page], capture_output=True, timeout=120)
    assert screenshot.stat().st_size > 10_000

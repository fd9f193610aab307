"""Shared test set-up: hypothesis profiles and small helpers.

Hypothesis runs derandomized (the same examples on every run, so CI is
deterministic) with a modest number of examples. Select another profile with
``HYPOTHESIS_PROFILE=dev`` (more examples, random) when hunting for bugs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    """A fresh, seeded generator per test."""
    return np.random.default_rng(12345)


def run_python(code: str, cwd, env_extra: dict | None = None, timeout: float = 300) -> str:
    """Run ``code`` in a fresh interpreter of this venv; return its stdout.

    Fails the test (with the child's stderr) when the child exits non-zero.
    """
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (env_extra or {}).items()})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"child process failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


@pytest.fixture
def python_subprocess():
    """``run(code, cwd, env_extra=None) -> stdout`` in a fresh interpreter."""
    return run_python

"""Shared fixtures: a tiny model config and a small built-in data set."""
import os

import pytest
import torch

from dataloader import load_builtin
from model import SPYLConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
SHARED = os.path.join(ROOT, "..", "shared")
SHEETS = os.path.join(SHARED, "lpc-sprites")
needs_sheets = pytest.mark.skipif(not os.path.isdir(SHEETS), reason="../shared/lpc-sprites not present")
# The real data the tests read. Outside CI a test whose data is absent is skipped (and listed,
# -rs); under CI=true it fails, so a CI run that lost its data cannot pass on built-in data alone.
SHARED_FOLDERS = ("lpc-sprites", "timeseries", "audio")
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config):
    """Under CI=true, stop at once, in one line, if a folder of real data is missing."""
    missing = [f"../shared/{f}" for f in SHARED_FOLDERS if not os.path.isdir(os.path.join(SHARED, f))]
    if IN_CI and missing:
        raise pytest.UsageError(f"CI=true but {', '.join(missing)} not found beside the checkout: CI tests on the "
                                "real data; put the shared data folder next to the repository")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skip is a failure: every skip here means real data or shipped weights are absent."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true and this test would skip: {reason.removeprefix('Skipped: ')}"


def tiny_config(**kw):
    """A config small enough that a step takes milliseconds."""
    base = dict(conv_width=4, g_dim=8, hidden=16, s_dim=6, d_dim=4, n_negatives=8, dataset_size=100)
    return SPYLConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def builtin_small():
    """(train, test) of the built-in set with 24 characters."""
    return load_builtin(chars=24)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sprites_dir(tmp_path_factory):
    """A data folder holding the real Sprites, composed once per test session from ../shared."""
    if not os.path.isdir(SHEETS):
        pytest.skip("../shared/lpc-sprites not present")
    from dataloader import load_sprites
    folder = tmp_path_factory.mktemp("data")
    load_sprites(str(folder), SHEETS)
    return folder

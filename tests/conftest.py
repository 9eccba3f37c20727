"""Shared fixtures: a tiny model config and a small built-in data set."""
import os

import pytest
import torch

from dataloader import load_builtin
from model import SPYLConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
SHEETS = os.path.join(ROOT, "..", "shared", "lpc-sprites")
needs_sheets = pytest.mark.skipif(not os.path.isdir(SHEETS), reason="../shared/lpc-sprites not present")


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

"""What the time-series sets share: the sequence container, normalisation with training
statistics only, and windows of hours as the model's steps.

Missing values are part of the data: they are stored as NaN, so every consumer sees what
was observed. SPYL zero-fills them at its input and counts only observed values in its
reconstruction loss (model.py), which after z-scoring means "missing = the training mean".
"""
import csv

import numpy as np
import torch

from utils import SPYLError


class TimeSeriesData:
    """Sequences as float32 N x T x D (T steps, each a flattened window of hours x features;
    NaN where nothing was observed) and labels {name: array with N rows}."""

    def __init__(self, x, labels, name):
        self.x, self.labels, self.name = x, labels, name

    def __len__(self):
        return len(self.x)

    def batch(self, idx, device="cpu"):
        """Sequences idx -> float tensor B x T x D on device, NaN where not observed."""
        return torch.from_numpy(self.x[idx]).to(device)


def zscore_stats(x):
    """Per-feature mean and standard deviation over the observed values of x (N x H x F)."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)  # float32 sums drift on 10^6 values
    mean = np.nanmean(flat, axis=0)
    std = np.nanstd(flat, axis=0)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def to_windows(x, window):
    """N x H x F hours -> N x (H / window) x (window * F): each step a window of hours, hour-major."""
    n, h, f = x.shape
    return np.ascontiguousarray(x.reshape(n, h // window, window * f))


def train_valid_split(n, fraction=0.85, seed=0):
    """Shuffle 0..n-1 and cut it into (train, valid) index arrays, the first `fraction` for training."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(n * fraction)
    return np.sort(order[:cut]), np.sort(order[cut:])


def make_splits(hours, labels, name, train_idx, valid_idx, test_idx, window):
    """Normalise with the training split's statistics only, cut into windows, and return
    {"train", "valid", "test": TimeSeriesData, "mean", "std": the statistics used}."""
    mean, std = zscore_stats(hours[train_idx])
    out = {"mean": mean, "std": std}
    for split, idx in (("train", train_idx), ("valid", valid_idx), ("test", test_idx)):
        x = to_windows((hours[idx] - mean) / std, window).astype(np.float32)
        out[split] = TimeSeriesData(x, {k: v[idx] for k, v in labels.items()}, name)
    return out


def read_table(path, columns, what):
    """The data rows of a CSV file whose header must be `columns`; one line if it cannot be read or is another table."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise SPYLError(f"{what}: cannot read {path} ({e})") from None
    if not rows or tuple(rows[0]) != tuple(columns):
        raise SPYLError(f"{what}: {path} has columns {rows[0][:8] if rows else []}, expected {list(columns)}")
    return rows[1:]

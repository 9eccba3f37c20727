"""ETTh1: hourly load of one electricity transformer and its oil temperature (Zhou et al., AAAI 2021).

The protocol of later work reporting SPYL: one sequence per calendar month, its first 672
hours (28 days) of the six load features; months of 2017-2018 for training (85%) and
validation (15%), 2016 for testing; z-scored with training statistics; steps are windows
of 24 hours. Downstream: each window's mean oil temperature (raw, in degrees) from [s, d_t].
"""
import os

import numpy as np

from datasets.fetch import check_file, data_root, download
from datasets.timeseries import make_splits, read_table, train_valid_split
from utils import SPYLError

NAME = "etth1"
URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTh1.csv"
SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"
COLUMNS = ("date", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
FEATURES = COLUMNS[1:7]
HOURS, WINDOW = 672, 24
STEPS, STEP_DIM = HOURS // WINDOW, WINDOW * len(FEATURES)
TRAIN_YEARS, TEST_YEARS = (2017, 2018), (2016,)


def read_csv(path):
    """ETTh1.csv -> (year-month N x 2 int, values N x 7 float32 in COLUMNS order), one line if it is not that file."""
    rows = read_table(path, COLUMNS, "ETTh1")
    try:
        ym = np.array([(int(r[0][:4]), int(r[0][5:7])) for r in rows], np.int64)
        values = np.array([[float(v) for v in r[1:]] for r in rows], np.float32)
    except (ValueError, IndexError):
        raise SPYLError(f"ETTh1: {path} has a row that is not 'YYYY-MM-DD hh:mm:ss' and 7 numbers") from None
    return ym, values


def load(root=None, download_ok=True, seed=0):
    """{"train", "valid", "test"} TimeSeriesData (steps: 28 windows of 24 h x 6 loads) with labels
    `ot` (N x 28 mean oil temperature per window, raw) and `month` (0..11), `year`."""
    folder = os.path.join(data_root(root), NAME)
    path = os.path.join(folder, "ETTh1.csv")
    if not os.path.isfile(path) and download_ok and not root:
        download(URL, path, "ETTh1", SHA256)
    check_file(path, SHA256, "ETTh1")
    ym, values = read_csv(path)
    months = sorted({tuple(m) for m in ym})
    seqs, ot, labels_ym = [], [], []
    for y, m in months:
        rows = np.flatnonzero((ym[:, 0] == y) & (ym[:, 1] == m))
        if len(rows) < HOURS:  # the last, partial month
            continue
        block = values[rows[:HOURS]]
        seqs.append(block[:, :6])
        ot.append(block[:, 6].reshape(STEPS, WINDOW).mean(1))
        labels_ym.append((y, m))
    hours, labels_ym = np.stack(seqs), np.array(labels_ym)
    labels = {"ot": np.stack(ot).astype(np.float32), "month": labels_ym[:, 1] - 1, "year": labels_ym[:, 0]}
    pool = np.flatnonzero(np.isin(labels_ym[:, 0], TRAIN_YEARS))
    train_idx, valid_idx = (pool[i] for i in train_valid_split(len(pool), 0.85, seed))
    test_idx = np.flatnonzero(np.isin(labels_ym[:, 0], TEST_YEARS))
    return make_splits(hours, labels, NAME, train_idx, valid_idx, test_idx, WINDOW)

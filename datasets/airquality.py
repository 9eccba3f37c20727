"""Beijing Multi-Site Air Quality (UCI 501; Zhang et al., Proc. R. Soc. A 2017).

The protocol of later work reporting SPYL: one sequence per (year, month, station), its
first 672 hours of 10 features (PM2.5, PM10, SO2, NO2, CO, O3, TEMP, PRES, DEWP, WSPM);
2016 for testing, the other years for training (85%) and validation (15%); z-scored with
training statistics; steps are windows of 24 hours. Downstream: the month (12 classes)
from s alone.
"""
import io
import os
import sys
import zipfile

import numpy as np

from datasets.fetch import check_file, data_root, download
from datasets.timeseries import make_splits, read_table, train_valid_split
from utils import SPYLError, atomic_write

NAME = "airquality"
FOLDER = "beijing-air"
URL = "https://archive.ics.uci.edu/static/public/501/beijing+multi+site+air+quality+data.zip"
STATIONS = ("Aotizhongxin", "Changping", "Dingling", "Dongsi", "Guanyuan", "Gucheng", "Huairou", "Nongzhanguan",
            "Shunyi", "Tiantan", "Wanliu", "Wanshouxigong")
SHA256 = dict(zip(STATIONS, (
    "a94fbcfc71708b6ffdc033360163d91efb7f675e496f6b5860929aa96b96351b",
    "a2e21402a6d95fb7043f87959e6e3dcbecb957aac356a6f8028a85b047c772e7",
    "3d8dff81f18a80d9f455876a785642bffe1e9b9924ec1e6b7ce8cca790432eeb",
    "9c0020214425e5ee2a64d42f97a1f632e1d8f6b53ad50edd85a686cc7999f27e",
    "59390fee3b032597b387491f5230e7edb90a8558e30217ebd6d9befbe669fbf9",
    "10ae48801ea55869fee56a48b885fb1127859c130551888d71673f34216ba951",
    "812dcbe848b3ba2c2d25731064797bff803c46eb0c602156a1fa044df136dc26",
    "572cf87b65ef543cd55d3a711b28474def224a46b0ec3fc8add8aaf13b67a487",
    "520b59e4ead3b0cfe7f1ed673e30275de8441e999db6f413d5172d2277b8c15a",
    "0743e34799cf1ee36195b73321b91baa5625276532e7263c588f68cdef3b4daa",
    "0b1a6d754a07f0def2f55434ddfa3870dcd0063b7f766a6f66b6c11bb05a377a",
    "ab1d6a356d6997a45f6d657ad47de1e05a4a08d4a7015b38a329a90665ab74d0")))
COLUMNS = ("No", "year", "month", "day", "hour", "PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP",
           "RAIN", "wd", "WSPM", "station")
FEATURES = ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES", "DEWP", "WSPM")
HOURS, WINDOW = 672, 24
STEPS, STEP_DIM = HOURS // WINDOW, WINDOW * len(FEATURES)
TEST_YEARS = (2016,)


def file_name(station):
    return f"PRSA_Data_{station}_20130301-20170228.csv"


def read_csv(path):
    """One station's CSV -> (year, month N x 2 int, FEATURES N x 10 float32 with NaN for 'NA')."""
    rows = read_table(path, COLUMNS, "air quality")
    cols = [COLUMNS.index(c) for c in FEATURES]
    try:
        ym = np.array([(int(r[1]), int(r[2])) for r in rows], np.int64)
        values = np.array([[np.nan if r[c] == "NA" else float(r[c]) for c in cols] for r in rows], np.float32)
    except (ValueError, IndexError):
        raise SPYLError(f"air quality: {path} has a row whose fields are not numbers or NA") from None
    return ym, values


def fetch(folder):
    """Download the UCI archive and write the 12 station CSVs into folder, each checked."""
    archive = os.path.join(folder, "uci-501.zip")
    download(URL, archive, "Beijing air quality (UCI 501)")
    found = {}

    def walk(zf):  # the UCI archive holds a zip that holds the CSVs
        for info in zf.infolist():
            base = os.path.basename(info.filename)
            if base.endswith(".zip"):
                walk(zipfile.ZipFile(io.BytesIO(zf.read(info))))
            elif base in {file_name(s) for s in STATIONS}:
                found[base] = zf.read(info)

    try:
        walk(zipfile.ZipFile(archive))
    except zipfile.BadZipFile:
        raise SPYLError(f"air quality: {archive} is not a zip archive; delete it and try again") from None
    for station in STATIONS:
        if file_name(station) not in found:
            raise SPYLError(f"air quality: the UCI archive has no {file_name(station)}; pass --data-root to a copy "
                            "instead")
        atomic_write(os.path.join(folder, file_name(station)), lambda f: f.write(found[file_name(station)]))
    os.remove(archive)
    print(f"air quality: 12 station files written to {folder}", file=sys.stderr)


def load(root=None, download_ok=True, seed=0):
    """{"train", "valid", "test"} TimeSeriesData (steps: 28 windows of 24 h x 10 features) with
    labels `month` (0..11), `year` and `station` (0..11)."""
    folder = os.path.join(data_root(root), FOLDER)
    if download_ok and not root and not all(os.path.isfile(os.path.join(folder, file_name(s))) for s in STATIONS):
        fetch(folder)
    seqs, labels = [], []
    for k, station in enumerate(STATIONS):
        path = os.path.join(folder, file_name(station))
        check_file(path, SHA256[station], "air quality")
        ym, values = read_csv(path)
        for y, m in sorted({tuple(v) for v in ym}):
            rows = np.flatnonzero((ym[:, 0] == y) & (ym[:, 1] == m))
            if len(rows) >= HOURS:
                seqs.append(values[rows[:HOURS]])
                labels.append((y, m, k))
    hours, labels = np.stack(seqs), np.array(labels)
    labels = {"year": labels[:, 0], "month": labels[:, 1] - 1, "station": labels[:, 2]}
    pool = np.flatnonzero(~np.isin(labels["year"], TEST_YEARS))
    train_idx, valid_idx = (pool[i] for i in train_valid_split(len(pool), 0.85, seed))
    test_idx = np.flatnonzero(np.isin(labels["year"], TEST_YEARS))
    return make_splits(hours, labels, NAME, train_idx, valid_idx, test_idx, WINDOW)

"""PhysioNet/CinC Challenge 2012, set A: the first 48 hours of 4000 adult ICU stays (Silva et al. 2012).

The protocol of later work reporting SPYL: the published cleaning of impossible values,
hourly bins (means), 10 variables (DiasABP, GCS, HCT, MAP, NIDiasABP, NIMAP, NISysABP,
RespRate, SysABP, Temp); stays with fewer than 40 hours or more than 60% missing dropped;
padded (as missing) to 80 hours; steps are windows of 4 hours; the first 20% of stays (by
RecordID) are the test set, the rest training (80%) and validation (20%). Downstream:
in-hospital death from [an LSTM over d, s] (AUPRC, AUROC), ICU type (4 classes) from s.

Two choices of ours, both documented: bins are [first + 60 b, first + 60 (b + 1)) minutes
from a stay's first measurement (the published pandas code uses left-open intervals, which
drops the measurements taken at that first minute), and the padding to 80 hours is kept
although no stay is longer than 48: it is what the published numbers were made with.
"""
import csv
import os
import tarfile

import numpy as np

from datasets.fetch import check_file, data_root, download, listing_digest
from datasets.timeseries import make_splits, train_valid_split
from utils import SPYLError

NAME = "physionet"
FOLDER = "physionet2012"
URLS = {"set-a.tar.gz": "https://physionet.org/files/challenge-2012/1.0.0/set-a.tar.gz",
        "Outcomes-a.txt": "https://physionet.org/files/challenge-2012/1.0.0/Outcomes-a.txt"}
OUTCOMES_SHA256 = "2613ea60ccda29f87571a7d6b09ad130858a8ccd66325bd073365925026883c2"
# Over the extracted files, as `(cd set-a && LC_ALL=C sha256sum *.txt) | sha256sum`: archives packed
# by different tools hold the same files in different bytes.
CONTENT_SHA256 = "9522c1a728116ed24ea0cf65a4237abe4dbcdf9c9f8d9fe9712e180fcf88bf8e"
FEATURES = ("DiasABP", "GCS", "HCT", "MAP", "NIDiasABP", "NIMAP", "NISysABP", "RespRate", "SysABP", "Temp")
MAX_HOURS, MIN_HOURS, MAX_MISSING, WINDOW = 80, 40, 0.6, 4
STEPS, STEP_DIM = MAX_HOURS // WINDOW, WINDOW * len(FEATURES)


def clean(name, v):
    """The published cleaning of one value of a selected variable: NaN where it is impossible,
    unit fixes for temperature."""
    if name == "DiasABP" and (v == -1 or v < 1 or v > 200):
        return np.nan
    if name in ("SysABP", "MAP", "NIDiasABP", "NISysABP", "NIMAP", "RespRate") and v < 1:
        return np.nan
    if name == "Temp":
        if 1 < v < 10:       # Celsius written in a strange scale, as the published code reads it
            v = v * 9 / 5 + 32
        if 95 < v < 113:     # Fahrenheit -> Celsius
            v = (v - 32) * 5 / 9
        if v < 25 or v > 45:
            return np.nan
    return v


def hour_bins(minutes, first, last, binning):
    """(bin of each measurement time, -1 where it falls in none; how many bins). "ours": [first + 60 b,
    first + 60 (b + 1)), up to the last measurement. "published": the pandas code of later work,
    `pd.cut(t, arange(first, last, 60))`, whose bins are open on the left, so a measurement at the
    first minute falls in none, and which stops at the last whole hour's edge."""
    minutes = np.asarray(minutes)
    if binning == "ours":
        return (minutes - first) // 60, (last - first) // 60 + 1
    if binning != "published":
        raise SPYLError(f"PhysioNet: binning must be 'ours' or 'published', got {binning!r}")
    n_bins = max(len(np.arange(first, last, 60)) - 1, 0)
    b = -(-(minutes - first) // 60) - 1                    # (first + 60 b, first + 60 (b + 1)]
    return np.where((b >= 0) & (b < n_bins), b, -1), n_bins


def parse_record(text, binning="ours"):
    """One stay's `Time,Parameter,Value` text -> (RecordID, ICUType, hours x 10 array of hourly
    means with NaN where nothing was measured), or None for a stay with no time series;
    binning: how times fall into hours (`hour_bins`)."""
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != "Time,Parameter,Value":
        raise SPYLError("PhysioNet: a record does not start with the header Time,Parameter,Value")
    static, times, series = {}, [], []
    for line in lines[1:]:
        try:
            t, name, value = line.split(",")
            minutes, v = int(t[:2]) * 60 + int(t[3:5]), float(value)
        except ValueError:
            raise SPYLError(f"PhysioNet: a record has the line {line[:60]!r}, not hh:mm,Parameter,number") from None
        if minutes == 0 and name in ("RecordID", "Age", "Gender", "Height", "ICUType", "Weight") and name not in static:
            static[name] = v
            continue
        times.append(minutes)
        if name in FEATURES:
            series.append((minutes, FEATURES.index(name), clean(name, v)))
    if not times or "RecordID" not in static:
        return None
    bins, n_hours = hour_bins([m for m, _, _ in series], min(times), max(times), binning)
    sums, counts = np.zeros((n_hours, len(FEATURES))), np.zeros((n_hours, len(FEATURES)))
    for b, (_, f, v) in zip(bins, series):
        if b >= 0 and not np.isnan(v):
            sums[b, f] += v
            counts[b, f] += 1
    with np.errstate(invalid="ignore"):
        hourly = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return int(static["RecordID"]), int(static.get("ICUType", 0)), hourly


def read_outcomes(path):
    """Outcomes-a.txt -> {RecordID: in-hospital death 0/1}."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "In-hospital_death" not in rows[0] or "RecordID" not in rows[0]:
        raise SPYLError(f"PhysioNet: {path} has columns {rows[0] if rows else []}, expected RecordID ... "
                        "In-hospital_death")
    rid, death = rows[0].index("RecordID"), rows[0].index("In-hospital_death")
    return {int(r[rid]): int(r[death]) for r in rows[1:]}


def load(root=None, download_ok=True, seed=0, binning="ours"):
    """{"train", "valid", "test"} TimeSeriesData (steps: 20 windows of 4 h x 10 variables) with labels
    `death` (0/1), `icu` (0..3), `record` and `hours` (how many of the 80 are the stay's own);
    binning "published" bins the hours as the published code does (`hour_bins`)."""
    folder = os.path.join(data_root(root), FOLDER)
    archive, outcomes = os.path.join(folder, "set-a.tar.gz"), os.path.join(folder, "Outcomes-a.txt")
    for name, path in (("set-a.tar.gz", archive), ("Outcomes-a.txt", outcomes)):
        if not os.path.isfile(path) and download_ok and not root:
            download(URLS[name], path, f"PhysioNet 2012 {name}")
    check_file(outcomes, OUTCOMES_SHA256, "PhysioNet")
    if not os.path.isfile(archive):
        raise SPYLError(f"PhysioNet: {archive} is missing")
    try:
        with tarfile.open(archive) as tf:
            records = (m for m in tf if m.isfile() and m.name.endswith(".txt"))
            files = {os.path.basename(m.name): tf.extractfile(m).read() for m in records}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SPYLError(f"PhysioNet: {archive} is not a readable tar.gz archive ({e}); delete it and fetch it "
                        "again") from None
    if listing_digest(files) != CONTENT_SHA256:
        raise SPYLError(f"PhysioNet: the records in {archive} differ from set A 1.0.0 (content digest mismatch); "
                        "replace it")
    texts = [files[name].decode() for name in sorted(files)]
    deaths = read_outcomes(outcomes)
    hours, labels = [], []
    for text in texts:
        rec = parse_record(text, binning)
        if rec is None:
            continue
        record, icu, hourly = rec
        if len(hourly) < MIN_HOURS or np.isnan(hourly).mean() > MAX_MISSING:
            continue
        padded = np.full((MAX_HOURS, len(FEATURES)), np.nan, np.float32)
        padded[:min(len(hourly), MAX_HOURS)] = hourly[:MAX_HOURS]
        hours.append(padded)
        labels.append((record, icu - 1, deaths[record], min(len(hourly), MAX_HOURS)))
    order = np.argsort([r[0] for r in labels])  # by RecordID: the first 20% are the test set
    hours, labels = np.stack(hours)[order], np.array(labels)[order]
    labels = {"record": labels[:, 0], "icu": labels[:, 1], "death": labels[:, 2], "hours": labels[:, 3]}
    n_test = int(0.2 * len(hours))
    test_idx, pool = np.arange(n_test), np.arange(n_test, len(hours))
    train_idx, valid_idx = (pool[i] for i in train_valid_split(len(pool), 0.8, seed))
    return make_splits(hours, labels, NAME, train_idx, valid_idx, test_idx, WINDOW)

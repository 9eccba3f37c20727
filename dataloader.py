"""Sequence data sets, one door to all of them (`load_dataset`), and batching.

Each data set is one module in `datasets/`: the Sprites benchmark (`sprites.py`) and the
built-in procedural set (`builtin.py`), with what those two share in `characters.py`; the
time series ETTh1, Beijing air quality and PhysioNet 2012 (`etth1.py`, `airquality.py`,
`physionet.py`, sharing `timeseries.py`); speech, FSDD (`fsdd.py`). This module imports them
and they never import it; the names the rest of the project uses from them are re-exported
here, so `from dataloader import ...` is the one import a script needs.
"""
import queue
import sys
import threading

import numpy as np

from datasets import airquality, builtin, etth1, fsdd, physionet, sprites
from datasets.characters import (ACTION_NAMES, ATTRIBUTES, DIRECTIONS, FRAMES, LABEL_NAMES, N_CHARACTERS, N_CLASSES,
                                 SIZE, SequenceData, character_index, character_labels, compose, drop_mapped_pages)
from datasets.builtin import load_builtin
from datasets.sprites import load_parts, load_sprites
from utils import SPYLError

__all__ = ["ACTION_NAMES", "ATTRIBUTES", "AUDIO", "DATASETS", "DIRECTIONS", "FRAMES", "HAS_VALIDATION", "LABEL_NAMES",
           "N_CHARACTERS", "N_CLASSES", "SIZE",
           "TIMESERIES", "SequenceData", "batch_indices", "character_index", "character_labels", "compose",
           "data_shape", "drop_mapped_pages", "hold_out", "load_builtin", "load_dataset", "load_parts", "load_splits",
           "load_sprites", "prefetch"]

TIMESERIES = {m.NAME: m for m in (etth1, airquality, physionet)}
AUDIO = {unit.NAME: unit for unit in fsdd.UNITS}
HAS_VALIDATION = {*TIMESERIES, *AUDIO}  # sets whose protocol has a validation split
DATASETS = ("auto", sprites.NAME, builtin.NAME, *TIMESERIES, *AUDIO)


def data_shape(name):
    """(steps per sequence, shape of one step) of a data set's sequences, known without reading
    it: what a model's frames and step_shape must be for it ("auto" is Sprites or the built-in
    set, whose shapes are the same)."""
    if name in TIMESERIES:
        return TIMESERIES[name].STEPS, (TIMESERIES[name].STEP_DIM,)
    if name in AUDIO:
        return AUDIO[name].SEGMENT, (AUDIO[name].STEP_DIM,)
    return FRAMES, (3, SIZE, SIZE)


def batch_indices(n, batch_size, seed, epoch, drop_last=True):
    """The shuffled batches of one epoch as index arrays; a pure function of (seed, epoch),
    so a resumed run sees exactly the batches it would have seen."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [np.sort(order[i:i + batch_size]) for i in range(0, stop, batch_size)]


def prefetch(data, batches, device, depth=2):
    """Yield data.batch(idx) for each idx, preparing the next ones in a background thread,
    so the training step never waits for indexing and copying."""
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            for idx in batches:
                if stop.is_set():
                    return
                q.put(data.batch(idx, device))
        except BaseException as e:  # handed to the consumer, raised there
            q.put(e)
        q.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


def load_dataset(name="auto", data_dir="data", sheets=None, chars=None, data_root=None, held_out="test"):
    """(train, held-out split) for 'sprites', 'builtin', 'auto' (Sprites if they can be had, else
    the built-in set after one loud line), a time-series set (etth1, airquality, physionet) or
    speech (fsdd), read from data_root or downloaded (all their splits: `load_splits`).

    held_out is "test", or "valid" for the validation split of a set whose protocol has one
    (HAS_VALIDATION: the time series and speech); the others give their test split."""
    if held_out not in ("test", "valid"):
        raise SPYLError(f"held_out must be 'test' or 'valid', got {held_out!r}")
    if name in TIMESERIES or name in AUDIO:
        splits = load_splits(name, data_root)
        return splits["train"], splits[held_out]
    if name == "builtin":
        return load_builtin(chars)
    if name not in ("sprites", "auto"):
        raise SPYLError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    try:
        return load_sprites(data_dir, sheets)
    except SPYLError as e:
        if name == "sprites":
            raise
        print(f"WARNING: real Sprites unavailable ({e}) -- training on the BUILT-IN procedural set instead",
              file=sys.stderr)
        return load_builtin(chars)


def load_splits(name, data_root=None):
    """{"train", ("valid",) "test", "mean", "std"} of a time-series or speech set, as its protocol splits it."""
    modules = {**TIMESERIES, **AUDIO}
    if name not in modules:
        raise SPYLError(f"unknown dataset {name!r}; use one of {', '.join(modules)}")
    return modules[name].load(data_root or None)


HELD_OUT_FRACTION = 0.1  # of the training characters (100 of Sprites' 1000)


def hold_out(train, fraction=HELD_OUT_FRACTION, seed=0):
    """Split the training set by character: (fit, held-out), the held-out set a fraction of the
    characters (all their sequences): what the judges' temperatures and the prior's fit are
    checked on, without touching the test split."""
    chars = character_index(train.labels[:, 1:5])
    unique = np.unique(chars)
    held = np.random.default_rng(seed).choice(unique, max(1, round(fraction * len(unique))), replace=False)
    mask = np.isin(chars, held)
    # index arrays copy out of the memory-mapped file: about 10% of it is held out, the rest is read in batches
    fit, out = np.flatnonzero(~mask), np.flatnonzero(mask)
    return (SequenceData(_Rows(train.x, fit), train.labels[fit], train.name),
            SequenceData(np.asarray(train.x[out]), train.labels[out], train.name))


class _Rows:
    """A view of some rows of an array (memory-mapped or not) that reads only the rows asked for."""

    def __init__(self, x, rows):
        self.x, self.rows = x, rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, idx):
        out = self.x[self.rows[idx]]
        drop_mapped_pages(self.x)
        return out

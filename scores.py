"""The figures a probe's predictions are read by, and how sure we can be of them.

A figure is computed from predictions on the test sequences. Predictions come as one array per
probe run (seed), with one row per test sequence: a row may hold one value (a class, a
probability) or several (one per window of the sequence, or per pass of a probe that reads
sampled codes), NaN where a window does not count. The figure of a row of the table is the mean
over runs; its 95% interval is a bootstrap over test sequences (a resample draws whole sequences,
so their windows stay together), the figure recomputed on each resample as the mean over runs.

- `score(figure, pred, truth)`: "mae" (per-step targets), "*_acc" (classes), "auprc", "auroc".
- `summarise(figure, runs, truth)`: {"mean", "std" over runs, "ci": [low, high]}.
- `auroc`, `average_precision`: numpy versions of scikit-learn's, fast enough for 1000 resamples.
"""
import numpy as np

from utils import SPYLError

RESAMPLES = 1000


def _flat(pred, truth):
    """Predictions N x ... and truth broadcast to them, flattened, without the NaN entries."""
    pred = np.asarray(pred, np.float64)
    truth = np.asarray(truth, np.float64)
    truth = truth.reshape(truth.shape + (1,) * (pred.ndim - truth.ndim))
    pred, truth = np.broadcast_arrays(pred, truth)
    keep = ~np.isnan(pred)
    return pred[keep], truth[keep]


def auroc(y, p):
    """Area under the ROC curve of scores p for binary labels y (ties count a half), NaN if y has one class."""
    y = np.asarray(y) > 0.5
    n_pos, n_neg = y.sum(), (~y).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = np.asarray(p)[order]
    # midranks for ties: each run of equal scores gets the mean of its positions
    edges = np.flatnonzero(np.diff(sp)) + 1
    starts, stops = np.r_[0, edges], np.r_[edges, len(sp)]
    ranks[order] = np.repeat((starts + stops + 1) / 2, stops - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y, p):
    """Average precision (the area under the precision-recall curve as a step function, as
    scikit-learn's average_precision_score): sum over score thresholds of precision times
    the recall gained there. NaN if there is no positive."""
    y = np.asarray(y) > 0.5
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(p), kind="mergesort")
    sp, sy = np.asarray(p)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(sp)), len(sp) - 1]   # the last index of each distinct threshold
    tp = np.cumsum(sy)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / y.sum()
    return float((precision * recall_gain).sum())


def score(figure, pred, truth):
    """One figure of predictions on test sequences: mae (pred and truth N x T), *_acc (pred
    classes, N or N x K, truth N), auprc / auroc (pred probabilities, truth 0/1)."""
    p, t = _flat(pred, truth)
    if figure == "mae":
        return float(np.abs(p - t).mean())
    if figure.endswith("_acc"):
        return float((p == t).mean())
    if figure == "auprc":
        return average_precision(t, p)
    if figure == "auroc":
        return auroc(t, p)
    raise SPYLError(f"unknown figure {figure!r}; use mae, auprc, auroc or a name ending in _acc")


def bootstrap(figure, runs, truth, resamples=RESAMPLES, seed=0):
    """The figure (mean over runs) on `resamples` resamples of the test sequences, drawn with
    replacement; resamples where it is undefined (one class only) are left out."""
    n = len(truth)
    rng = np.random.default_rng(seed)
    truth = np.asarray(truth)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        v = np.mean([score(figure, np.asarray(r)[idx], truth[idx]) for r in runs])
        if not np.isnan(v):
            values.append(v)
    return np.array(values)


def summarise(figure, runs, truth, resamples=RESAMPLES, seed=0):
    """{"mean", "std" (over runs), "ci": the 95% bootstrap interval [low, high] over test sequences}."""
    if not runs or any(len(r) != len(truth) for r in runs):
        raise SPYLError(f"{figure}: every run needs one prediction row per test sequence ({len(truth)})")
    values = [score(figure, r, truth) for r in runs]
    boot = bootstrap(figure, runs, truth, resamples, seed)
    return {"mean": float(np.mean(values)), "std": float(np.std(values)),
            "ci": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]}

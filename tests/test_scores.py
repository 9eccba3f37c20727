"""scores.py: the figures against scikit-learn, and the bootstrap interval on cases whose answer is known."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from scores import auroc, average_precision, bootstrap, score, summarise
from utils import SPYLError


def test_auroc_and_average_precision_match_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 200))
        y, p = rng.integers(0, 2, n), np.round(rng.random(n), 1)      # rounded: many tied scores
        if y.min() == y.max():
            continue
        assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert np.isnan(auroc(np.ones(5), np.arange(5.0))) and np.isnan(average_precision(np.zeros(5), np.arange(5.0)))


def test_figures_broadcast_over_windows_and_skip_nan():
    truth = np.array([0, 1, 2])
    pred = np.array([[0, 0, np.nan], [1, 2, np.nan], [np.nan, np.nan, 2]])   # per-window classes, NaN: not a window
    assert score("icu_acc", pred, truth) == pytest.approx(4 / 5)              # 2 + 1 + 1 of 5 windows
    assert score("mae", np.full((2, 4), 3.0), np.ones((2, 4))) == 2.0
    with pytest.raises(SPYLError, match="unknown figure"):
        score("f1", pred, truth)


def test_bootstrap_interval_of_a_known_proportion():
    n, hits = 400, 280                                                      # accuracy 0.7 on 400 sequences
    truth = np.zeros(n, int)
    pred = np.where(np.arange(n) < hits, 0, 1)
    s = summarise("month_acc", [pred, pred], truth)
    half = 1.96 * np.sqrt(0.7 * 0.3 / n)                                     # the normal approximation: 0.045
    assert s["mean"] == pytest.approx(0.7) and s["std"] == 0
    assert s["ci"][0] == pytest.approx(0.7 - half, abs=0.012) and s["ci"][1] == pytest.approx(0.7 + half, abs=0.012)
    same = summarise("mae", [np.full((50, 3), 2.0)], np.zeros((50, 3)))      # every error 2: no spread at all
    assert same["ci"] == [2.0, 2.0]


def test_bootstrap_averages_runs_and_leaves_out_undefined_resamples():
    truth = np.array([1, 0, 0, 0, 0, 0])                                    # one positive: some resamples have none
    runs = [np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.5]), np.array([0.1, 0.9, 0.2, 0.3, 0.4, 0.5])]
    values = bootstrap("auroc", runs, truth, resamples=200)
    assert 0 < len(values) < 200 and np.all((values >= 0) & (values <= 1))
    assert summarise("auroc", runs, truth)["mean"] == pytest.approx((1.0 + 0.0) / 2)
    with pytest.raises(SPYLError, match="one prediction row per test sequence"):
        summarise("auroc", [runs[0][:5]], truth)

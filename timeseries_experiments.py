"""Time-series experiments: what SPYL's frozen codes tell about ETTh1, Beijing air quality and
PhysioNet 2012, next to the controls that bound them, under two protocols.

    python timeseries_experiments.py --data-root ../shared/timeseries     # the shipped weights, both protocols
    python timeseries_experiments.py --dataset physionet --train           # retrain first, chosen on validation

Figures (probes on frozen codes, trained on the training split, scored on the test split):
- etth1: each 24-hour window's mean oil temperature from [s, d_t], MAE in degrees (lower is better);
- airquality: the month (12 classes) from s alone, accuracy;
- physionet: in-hospital death from an LSTM over d next to s (AUPRC, AUROC), and the ICU type
  (4 classes) from s alone, accuracy.
Protocols:
- correct: posterior means, labels aligned with their inputs, inputs as recorded;
- published: the public evaluation of later work as it runs, bugs included (published_protocol.py),
  so the published rows compare like for like.
Rows: SPYL and every method it is compared with (methods/; same budget, weights/timeseries/,
a row wherever its model is there), and controls that need no
representation learning: the training mean or majority class (`constant`), a linear model on
raw window features (`linear`), a random forest on the whole raw sequence (`rf`) and one on single
windows (`rf_window`, each window predicts its sequence's label). Every figure: mean and std over
runs and a 95% bootstrap interval over test sequences (scores.py).
"""
import json
import os
import sys
import time

import numpy as np
import torch

import published_protocol as published
from jobs import train_model
from dataloader import TIMESERIES, load_splits
from datasets import physionet
from datasets.timeseries import TimeSeriesData
from comparison import PUBLISHED_SERIES
from methods import METHODS, parse_methods
from model import SPYL
from probes import classify, classify_sequence, frozen_codes, regress_steps
from scores import score, summarise
from utils import (ArgumentParser, SPYLError, atomic_write, figure, one_of, pick_device, run_main, save_figure,
                   seed_everything)

FIGURES = {"etth1": ("mae",), "airquality": ("month_acc",), "physionet": ("auprc", "auroc", "icu_acc")}
COLUMNS = (("etth1", "mae", "ETTh1 MAE"), ("physionet", "auprc", "AUPRC"), ("physionet", "auroc", "AUROC"),
           ("physionet", "icu_acc", "ICU type"), ("airquality", "month_acc", "month"))
# Published rows, in COLUMNS order (comparison.py: SPYL and DBSE as DBSE's paper reports them,
# DiffSDA, the field's best, and the random forest those tables carry)
PUBLISHED = {name: tuple(v[(ds, fig)] for ds, fig, _ in COLUMNS) for name, v in PUBLISHED_SERIES.items()}
ROWS = (*METHODS, "rf", "rf_window", "linear", "constant")
PROTOCOLS = ("correct", "published")
RUNS = 3
TRUTH = {"mae": "ot", "month_acc": "month", "auprc": "death", "auroc": "death", "icu_acc": "icu"}
# The KL weights --train tries (w_kl_s = w_kl_d), the best on the validation split kept. Widths,
# sizes and epochs stay the preset's: a wider grid is affordable on a GPU, not in CI's hour.
KL_WEIGHTS = (0.01, 0.1, 1.0)


def weights_path(folder, name, row):
    """weights/timeseries/etth1-spyl.pth and the like."""
    return os.path.join(folder, f"{name}-{row}.pth")


def row_name(name, row):
    """`constant` is the majority class where the figure is a classification."""
    return "majority" if row == "constant" and name != "etth1" else row


def last_step(hours, window, protocol):
    """Index of the step the mortality LSTM is read at: the last that holds a stay's own hours
    (correct), or floor(hours / window) - 1 (published), which drops a partial last window."""
    steps = np.ceil(np.asarray(hours) / window) if protocol == "correct" else np.asarray(hours) // window
    return steps.astype(int) - 1


def prepare(name, splits, protocol, data_root):
    """The splits as the protocol feeds them: as loaded (correct), or rotated and, for PhysioNet,
    binned as the published code does (published)."""
    if protocol == "correct":
        return splits
    if name == "physionet":
        splits = physionet.load(data_root or None, binning="published")
    turn = published.ROTATION[name]
    return {k: TimeSeriesData(published.rotate(v.x, turn), v.labels, v.name) if isinstance(v, TimeSeriesData) else v
            for k, v in splits.items()}


def code_predictions(name, model, splits, protocol, device, runs=RUNS):
    """{figure: [test predictions of each probe run]} of one model's frozen codes."""
    tr, te, va = splits["train"], splits["test"], splits.get("valid")
    window = TIMESERIES[name].WINDOW
    if protocol == "published":
        ctr, cte = (published.Codes(*frozen_codes(model, d, device, with_std=True)) for d in (tr, te))
        if name == "etth1":
            return {"mae": [published.regress_steps(ctr, tr.labels["ot"], cte, seed=r) for r in range(runs)]}
        cva = published.Codes(*frozen_codes(model, va, device, with_std=True))
        key, n = ("month", 12) if name == "airquality" else ("icu", 4)
        out = {f"{key}_acc": published.classify(ctr, tr.labels[key], cva, va.labels[key], cte, n,
                                                batch_size=10 if key == "month" else 30)}
        if name == "physionet":
            p = [published.classify_sequence(ctr, last_step(tr.labels["hours"], window, protocol), tr.labels["death"],
                                             cte, last_step(te.labels["hours"], window, protocol),
                                             seed=r) for r in range(runs)]
            out = {"auprc": p, "auroc": p, **out}
        return out
    (s_tr, d_tr), (s_te, d_te) = frozen_codes(model, tr, device), frozen_codes(model, te, device)
    if name == "etth1":
        return {"mae": [regress_steps(s_tr, d_tr, tr.labels["ot"], s_te, d_te, seed=r) for r in range(runs)]}
    key, n = ("month", 12) if name == "airquality" else ("icu", 4)
    out = {f"{key}_acc": [classify(s_tr, tr.labels[key], s_te, te.labels[key], n,
                                   seed=r)[1].argmax(1) for r in range(runs)]}
    if name == "physionet":
        p = [classify_sequence(s_tr, d_tr, last_step(tr.labels["hours"], window, protocol), tr.labels["death"], s_te,
                               d_te, last_step(te.labels["hours"], window, protocol), seed=r) for r in range(runs)]
        out = {"auprc": p, "auroc": p, **out}
    return out


def real_windows(name, data):
    """N x T: which steps hold a sequence's own hours (PhysioNet pads its stays to 80 hours)."""
    n, t = data.x.shape[:2]
    if name != "physionet":
        return np.ones((n, t), bool)
    return np.arange(t)[None] < np.ceil(data.labels["hours"] / TIMESERIES[name].WINDOW)[:, None]


def baseline_predictions(name, row, splits, seed):
    """{figure: test predictions} of one control: constant (the training mean, or majority
    class), linear, rf (whole sequence) or rf_window (single windows). Raw inputs are the
    z-scored features with missing values at 0, the training mean."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    tr, te = splits["train"], splits["test"]
    xtr, xte = np.nan_to_num(tr.x), np.nan_to_num(te.x)
    mtr, mte = real_windows(name, tr), real_windows(name, te)
    forest = dict(n_estimators=100, random_state=seed, n_jobs=-1)
    keys = {"airquality": ("month",), "physionet": ("death", "icu")}.get(name, ())
    if name == "etth1":
        y = tr.labels["ot"]
        if row == "constant":
            return {"mae": np.full(te.labels["ot"].shape, y.mean())}
        if row == "rf":   # the month's 28 x 144 values -> its 28 window means
            return {"mae": RandomForestRegressor(**forest).fit(xtr.reshape(len(xtr), -1),
                                                               y).predict(xte.reshape(len(xte), -1))}
        model = make_pipeline(StandardScaler(), Ridge(1.0)) if row == "linear" else RandomForestRegressor(**forest)
        return {"mae": model.fit(xtr.reshape(-1, xtr.shape[2]),
                                 y.reshape(-1)).predict(xte.reshape(-1, xte.shape[2])).reshape(mte.shape)}
    out = {}
    for key in keys:
        y = tr.labels[key]
        if row == "constant":
            p = np.full(len(te), y.mean() if key == "death" else np.bincount(y).argmax(), np.float64)
        elif row == "rf_window":   # every real window is a sample labelled with its sequence's label
            clf = RandomForestClassifier(**forest).fit(xtr[mtr], np.broadcast_to(y[:, None], mtr.shape)[mtr])
            p = np.full(mte.shape, np.nan)
            p[mte] = clf.predict_proba(xte[mte])[:, 1] if key == "death" else clf.predict(xte[mte])
        else:
            if row == "linear":   # the sequence's mean window: the mean of each hour-of-window x feature
                ftr, fte = ((x * m[..., None]).sum(1) / m.sum(1, keepdims=True) for x, m in ((xtr, mtr), (xte, mte)))
                clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            else:
                ftr, fte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
                clf = RandomForestClassifier(**forest)
            clf.fit(ftr, y)
            p = clf.predict_proba(fte)[:, 1] if key == "death" else clf.predict(fte)
        if key == "death":
            out.update(auprc=p, auroc=p)
        else:
            out[f"{key}_acc"] = p
    return out


def evaluate_dataset(name, splits, protocol, weights_dir, device, runs=RUNS, rows=ROWS):
    """{row: {figure: {"mean", "std", "ci"}}} for the rows whose weights exist and the controls;
    and, under the correct protocol, (model, s of the test split) of SPYL, for the figures."""
    out, spyl = {}, None
    test = splits["test"].labels
    truth = {f: test[TRUTH[f]] for f in FIGURES[name]}
    for row in rows:
        if row in METHODS:
            path = weights_path(weights_dir, name, row)
            if not os.path.isfile(path):
                print(f"note: no {path}; the {row} row is skipped (train it with --train)", file=sys.stderr)
                continue
            model = SPYL.load(path, map_location=device)
            preds = code_predictions(name, model, splits, protocol, device, runs)
            if row == "spyl" and protocol == "correct":
                spyl = (model, frozen_codes(model, splits["test"], device)[0])
        else:
            # constant and linear are deterministic: one run is all runs
            n = runs if row.startswith("rf") else 1
            per_run = [baseline_predictions(name, row, splits, seed) for seed in range(n)]
            preds = {f: [r[f] for r in per_run] for f in FIGURES[name]}
        out[row_name(name, row)] = {f: summarise(f, preds[f], truth[f]) for f in FIGURES[name]}
    return out, spyl


def _cell(figure, v):
    pct = figure.endswith("_acc")
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.2f}" if figure == "mae" else f"{x:.3f}")
    return f"{f(v['mean'])}±{f(v['std'])} [{f(v['ci'][0])},{f(v['ci'][1])}]"


def _found(sets, label, cols):
    """A table row's results in each column (None where the set has no such row); `constant`
    is found under `majority` where the figure is a classification."""
    return [sets[ds].get(label) or sets[ds].get(row_name(ds, label)) for ds, _, _ in cols]


def _published_cells(values, cols, mae_digits):
    """One published row, in COLUMNS order, as the cells of the columns shown."""
    vals = dict(zip([(ds, fig) for ds, fig, _ in COLUMNS], values))
    digits = lambda fig: mae_digits if fig == "mae" else 3
    return [f"{100 * vals[(ds, fig)]:.2f}" if fig.endswith("_acc") else f"{vals[(ds, fig)]:.{digits(fig)}f}"
            for ds, fig, _ in cols]


def format_table(results, protocol):
    """Plain-text table of one protocol: our rows (mean ± std over runs [95% bootstrap interval])
    and the published rows, one column per figure."""
    cols = [(ds, fig, title) for ds, fig, title in COLUMNS if ds in results]
    width = 27
    lines = [f"protocol: {protocol}", f"{'row':<13}" + "".join(f"{title:>{width}}" for _, _, title in cols)]
    for label in ROWS:
        found = _found(results, label, cols)
        if any(found):
            lines.append(f"{label:<13}" + "".join(f"{_cell(fig, r[fig]) if r else '-':>{width}}" for r,
                                                  (_, fig, _) in zip(found, cols)))
    for pub, values in PUBLISHED.items():
        lines.append(f"{pub + ' (pub.)':<13}" + "".join(f"{c:>{width}}" for c in _published_cells(values, cols, 3)))
    lines.append("constant: the training mean (ETTh1) or majority class; MAE: lower is better, every other figure "
                 "higher; ± std over runs, [95% bootstrap interval over test sequences]")
    return "\n".join(lines)


def markdown_tables(results):
    """The README's tables, one per protocol: rows ours and published, columns the five figures."""
    out = []
    for protocol, sets in results.items():
        cols = [(ds, fig, title) for ds, fig, title in COLUMNS if ds in sets]
        lines = [f"**{protocol}**", "", "| row | " + " | ".join(t for _, _, t in cols) + " |",
                 "| --- |" + " ---: |" * len(cols)]
        for label in ROWS:
            found = _found(sets, label, cols)
            if any(found):
                name = f"**{label}**" if label == "spyl" else label
                lines.append(f"| {name} | " + " | ".join(_cell(fig, r[fig]).replace("±", " ± ").replace(" [",
                                                                                              "<br>[") if r else "-"
                                                     for r, (_, fig, _) in zip(found, cols)) + " |")
        for pub, values in PUBLISHED.items():
            lines.append(f"| {pub} (published) | " + " | ".join(_published_cells(values, cols, 2)) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def plot_reconstructions(models, all_splits, path):
    """One test sequence per set: three features over the hours as observed (dots; missing ones
    absent) and as SPYL reconstructs them from its posterior means (line)."""
    fig, axes = figure(len(models), 3, figsize=(12, 2.4 * len(models)), squeeze=False)
    for row, (name, model) in enumerate(models.items()):
        data, module = all_splits[name]["test"], TIMESERIES[name]
        i = int(np.argmax((~np.isnan(data.x)).mean((1, 2))))  # the most observed test sequence
        x = data.batch(np.array([i]))
        with torch.no_grad():
            x_hat = model.decode(*model.encode(x)[::2])
        n_feat = len(module.FEATURES)
        hours = lambda a: a[0].reshape(-1, n_feat).numpy()  # steps x (window * F) -> hours x F
        obs, rec = hours(x), hours(x_hat)
        for col, f in enumerate((0, n_feat // 2, n_feat - 1)):
            ax = axes[row, col]
            t = np.arange(len(obs))
            ax.plot(t, rec[:, f], color="tab:red", lw=1, label="reconstruction")
            ax.plot(t, obs[:, f], ".", ms=2.5, color="black", label="observed")
            missing = np.isnan(obs[:, f])
            ax.set_title(f"{name}: {module.FEATURES[f]} ({missing.mean():.0%} missing)", fontsize=9)
            ax.set_xlabel("hour", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path, dpi=90)


def plot_static_codes(codes_by_set, all_splits, path):
    """Static codes of each test set, projected on their two principal axes, coloured by what s
    should know: the month (ETTh1, air quality), the ICU type (PhysioNet)."""
    fig, axes = figure(1, len(codes_by_set), figsize=(4.2 * len(codes_by_set), 3.6), squeeze=False)
    for ax, (name, s) in zip(axes[0], codes_by_set.items()):
        labels = all_splits[name]["test"].labels
        key, title = ("icu", "ICU type") if name == "physionet" else ("month", "month")
        z = s - s.mean(0)
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        p = z @ vt[:2].T
        sc = ax.scatter(p[:, 0], p[:, 1], c=labels[key], cmap="tab10" if key == "icu" else "twilight", s=10)
        ax.set_title(f"{name}: s of the test set, by {title}", fontsize=9)
        fig.colorbar(sc, ax=ax)
    save_figure(fig, path, dpi=90)



def criterion(name, figures):
    """The one number --train maximises on the validation split: minus the MAE (ETTh1), the
    accuracy (air quality), the mean of AUPRC, AUROC and ICU accuracy (PhysioNet)."""
    if name == "etth1":
        return -figures["mae"]
    return float(np.mean([figures[f] for f in FIGURES[name]]))


def validation_figures(name, model, splits, device):
    """The correct protocol's figures of one model, probes trained on train and scored on the
    validation split (one probe run)."""
    held = {"train": splits["train"], "test": splits["valid"]}
    preds = code_predictions(name, model, held, "correct", device, runs=1)
    return {f: score(f, preds[f][0], splits["valid"].labels[TRUTH[f]]) for f in FIGURES[name]}


def retrain(name, splits, data_root, weights_dir, runs_dir, device, methods=tuple(METHODS)):
    """Train each of `methods` on one set with the KL weight (KL_WEIGHTS) that scores best on the
    validation split, the same procedure for every method; write the chosen models into
    weights_dir and every candidate's validation figures into runs_dir/selection-NAME.json (the
    other methods' records there are kept)."""
    record_path = os.path.join(runs_dir, f"selection-{name}.json")
    record = {}
    if os.path.isfile(record_path):
        with open(record_path) as f:
            record = json.load(f)
    for row in methods:
        tried, paths = [], []
        for kl in KL_WEIGHTS:
            tag = f"{name}-{row}-kl{kl:g}"
            path = os.path.join(runs_dir, tag, "model.pth")
            paths.append(path)
            if not os.path.isfile(path):  # a candidate interrupted here goes on from its checkpoint
                train_model(name, path, os.path.join(runs_dir, tag, "run"), data_root, method=row,
                            flags=["--w-kl-s", str(kl), "--w-kl-d", str(kl)], resume=True)
            figures = validation_figures(name, SPYL.load(path, map_location=device), splits, device)
            tried.append({"w_kl": kl, "valid": figures, "criterion": criterion(name, figures)})
            print(f"{tag}: validation {figures}", file=sys.stderr)
        best = max(range(len(tried)), key=lambda i: tried[i]["criterion"])
        os.makedirs(weights_dir, exist_ok=True)
        # written in half precision, as the speech models: half the bytes of a repository that travels whole
        SPYL.load(paths[best]).save(weights_path(weights_dir, name, row), data=name, half=True)
        record[row] = {"chosen": {"w_kl": KL_WEIGHTS[best]}, "tried": tried}
        atomic_write(record_path, lambda f: json.dump(record, f, indent=1), mode="w")
    return record


def main(argv=None):
    p = ArgumentParser(description="Time-series experiments on frozen SPYL codes, beside no-learning controls.")
    p.add_argument("--data-root", default="",
                   help="folder holding etth1/, beijing-air/, physionet2012/ (default: $SPYL_DATA_ROOT, else data/, "
                        "downloading)")
    p.add_argument("--dataset", type=one_of(*TIMESERIES), default=None,
                   help=f"one of {', '.join(TIMESERIES)} (default: all)")
    p.add_argument("--protocol", type=one_of("both", *PROTOCOLS), default="both",
                   help="correct (posterior means, aligned labels), published (the public evaluation, bugs included) "
                        "or both (default)")
    p.add_argument("--weights-dir", default="weights/timeseries")
    p.add_argument("--train", action="store_true",
                   help="retrain the --methods on each set first, settings chosen on validation (writes "
                        "--weights-dir)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"with --train: the methods to train (default: all of {', '.join(METHODS)})")
    p.add_argument("--runs-dir", default="runs/timeseries",
                   help="with --train: the run folders and the validation record")
    p.add_argument("--device", default="auto")
    p.add_argument("--fig-dir", default="fig")
    p.add_argument("--out-json", default="fig/timeseries.json")
    p.add_argument("--markdown", metavar="JSON", help="only print the README's tables from this results file")
    a = p.parse_args(argv)
    if a.markdown:
        try:
            with open(a.markdown) as f:
                print(markdown_tables(json.load(f)))
        except (OSError, ValueError, KeyError) as e:
            raise SPYLError(f"--markdown {a.markdown}: not a results file of this script ({e})") from None
        return
    names = [a.dataset] if a.dataset else list(TIMESERIES)
    methods = parse_methods(a.methods)
    protocols = PROTOCOLS if a.protocol == "both" else (a.protocol,)
    device = pick_device(a.device)
    seed_everything(0)
    t0 = time.time()
    results = {pr: {} for pr in protocols}
    all_splits, models, static = {}, {}, {}
    for name in names:
        all_splits[name] = load_splits(name, a.data_root or None)
        if a.train:
            retrain(name, all_splits[name], a.data_root, a.weights_dir, a.runs_dir, device, methods)
        for pr in protocols:
            results[pr][name], spyl = evaluate_dataset(name, prepare(name, all_splits[name], pr, a.data_root), pr,
                                                       a.weights_dir, device)
            if spyl is not None:
                models[name], static[name] = spyl
            print(f"{name}, {pr} protocol: done ({time.time() - t0:.0f} s so far)", file=sys.stderr)
    for pr in protocols:
        print(format_table(results[pr], pr) + "\n")
    atomic_write(a.out_json, lambda f: json.dump(results, f, indent=1), mode="w")
    written = [a.out_json]
    if models:
        for fn, path in ((lambda p: plot_reconstructions(models, all_splits, p), "timeseries_recon.png"),
                         (lambda p: plot_static_codes(static, all_splits, p), "timeseries_static.png")):
            fn(os.path.join(a.fig_dir, path))
            written.append(os.path.join(a.fig_dir, path))
    print(f"wrote {', '.join(written)} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    run_main(main)

"""Time-series experiments: what SPYL's frozen codes tell about ETTh1, Beijing air quality and
PhysioNet 2012, by the protocol later work uses to report SPYL.

    python timeseries_experiments.py --data-root ../shared/timeseries     # the shipped weights, all three sets
    python timeseries_experiments.py --dataset physionet --train           # retrain SPYL and DSVAE first

Per set, a probe (probes.py) is trained on the training split's posterior means and scored
on the test split, 3 times with different seeds (mean and std):
- etth1: each 24-hour window's mean oil temperature from [s, d_t], MAE in degrees (lower is better);
- airquality: the month (12 classes) from s alone, accuracy;
- physionet: in-hospital death from an LSTM over d next to s (AUPRC, AUROC), and the ICU type
  (4 classes) from s alone, accuracy.
Rows: SPYL and DSVAE (`--dsvae`, same budget), both from weights/timeseries/, and a random
forest on the raw features (scikit-learn), as in the published table.
"""
import json
import os
import sys
import time

import numpy as np
import torch

import train
from dataloader import TIMESERIES, load_splits
from model import SPYL
from probes import classify, classify_sequence, frozen_codes, mean_std, regress_steps
from utils import ArgumentParser, one_of, atomic_write, figure, pick_device, run_main, save_figure, seed_everything

# The SPYL row of later work's table, and its random forest (for reference).
ANCHORS = {"etth1": {"spyl": {"mae": 12.22}, "rf": {"mae": 10.19}},
           "airquality": {"spyl": {"month_acc": 0.5793}, "rf": {"month_acc": 0.6243}},
           "physionet": {"spyl": {"auprc": 0.367, "auroc": 0.764, "icu_acc": 0.4698}, "rf": {"auprc": 0.446, "auroc": 0.802, "icu_acc": 0.62}}}
LOWER_IS_BETTER = {"mae"}
ROWS = ("spyl", "dsvae", "rf")
RUNS = 3


def weights_path(folder, name, row):
    """weights/timeseries/etth1-spyl.pth and the like."""
    return os.path.join(folder, f"{name}-{row}.pth")


def last_step(hours, window):
    """Index of the last step that holds a stay's own hours."""
    return np.ceil(np.asarray(hours) / window).astype(int) - 1


def probe_codes(name, splits, s_tr, d_tr, s_te, d_te, seed):
    """One run of the set's probes on frozen codes -> {figure: value}."""
    tr, te = splits["train"].labels, splits["test"].labels
    if name == "etth1":
        return {"mae": regress_steps(s_tr, d_tr, tr["ot"], s_te, d_te, te["ot"], seed=seed)}
    if name == "airquality":
        return {"month_acc": classify(s_tr, tr["month"], s_te, te["month"], 12, seed=seed)[0]}
    from sklearn.metrics import average_precision_score, roc_auc_score
    window = TIMESERIES[name].WINDOW
    p = classify_sequence(s_tr, d_tr, last_step(tr["hours"], window), tr["death"], s_te, d_te, last_step(te["hours"], window), seed=seed)
    return {"auprc": float(average_precision_score(te["death"], p)), "auroc": float(roc_auc_score(te["death"], p)),
            "icu_acc": classify(s_tr, tr["icu"], s_te, te["icu"], 4, seed=seed)[0]}


def probe_forest(name, splits, seed):
    """One run of a random forest (100 trees) on the raw features (missing as 0) -> {figure: value}."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import average_precision_score, roc_auc_score
    xtr, xte = (np.nan_to_num(splits[k].x) for k in ("train", "test"))
    tr, te = splits["train"].labels, splits["test"].labels
    if name == "etth1":  # one sample per window: its 24 hours of the 6 loads
        rf = RandomForestRegressor(100, random_state=seed, n_jobs=-1).fit(xtr.reshape(-1, xtr.shape[2]), tr["ot"].reshape(-1))
        return {"mae": float(np.abs(rf.predict(xte.reshape(-1, xte.shape[2])) - te["ot"].reshape(-1)).mean())}
    xtr, xte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
    if name == "airquality":
        rf = RandomForestClassifier(100, random_state=seed, n_jobs=-1).fit(xtr, tr["month"])
        return {"month_acc": float((rf.predict(xte) == te["month"]).mean())}
    death = RandomForestClassifier(100, random_state=seed, n_jobs=-1).fit(xtr, tr["death"]).predict_proba(xte)[:, 1]
    icu = RandomForestClassifier(100, random_state=seed, n_jobs=-1).fit(xtr, tr["icu"])
    return {"auprc": float(average_precision_score(te["death"], death)), "auroc": float(roc_auc_score(te["death"], death)),
            "icu_acc": float((icu.predict(xte) == te["icu"]).mean())}


def evaluate_dataset(name, splits, weights_dir, device, runs=RUNS):
    """{row: {figure: {"mean", "std"}}} for SPYL, DSVAE (if their weights exist) and the forest; and
    the SPYL codes of the test split (for the figures)."""
    out, test_codes = {}, None
    for row in ("spyl", "dsvae"):
        path = weights_path(weights_dir, name, row)
        if not os.path.isfile(path):
            print(f"note: no {path}; the {row} row is skipped (train it with --train)", file=sys.stderr)
            continue
        model = SPYL.load(path, map_location=device)
        s_tr, d_tr = frozen_codes(model, splits["train"], device)
        s_te, d_te = frozen_codes(model, splits["test"], device)
        out[row] = mean_std([probe_codes(name, splits, s_tr, d_tr, s_te, d_te, seed) for seed in range(runs)])
        if row == "spyl":
            test_codes = (model, s_te)
    out["rf"] = mean_std([probe_forest(name, splits, seed) for seed in range(runs)])
    return out, test_codes


def format_table(results):
    """Plain-text table: ours (mean and std over runs) beside the published figures."""
    lines = [f"{'set':<12}{'figure':<11}" + "".join(f"{r:>16}" for r in ROWS) + f"{'SPYL published':>16}{'RF published':>14}"]
    for name, rows in results.items():
        for fig in next(iter(rows.values())):
            pct = fig != "mae" and not fig.startswith("au")
            fmt = (lambda v: f"{100 * v:.2f}%") if pct else (lambda v: f"{v:.3f}")
            cells = "".join(f"{fmt(rows[r][fig]['mean']) + ' ± ' + fmt(rows[r][fig]['std']).rstrip('%'):>16}" if r in rows else f"{'-':>16}" for r in ROWS)
            pub = ANCHORS[name]
            lines.append(f"{name:<12}{fig:<11}{cells}{fmt(pub['spyl'][fig]):>16}{fmt(pub['rf'][fig]):>14}")
    lines.append("(mae: lower is better; every other figure: higher is better)")
    return "\n".join(lines)


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


def retrain(name, data_root, weights_dir, runs_dir):
    """Train SPYL and DSVAE on one set with its preset; write their model files into weights_dir."""
    for row in ("spyl", "dsvae"):
        train.train_model(name, weights_path(weights_dir, name, row), os.path.join(runs_dir, f"{name}-{row}"), data_root, dsvae=row == "dsvae")


def main(argv=None):
    p = ArgumentParser(description="Time-series experiments on frozen SPYL codes.")
    p.add_argument("--data-root", default="", help="folder holding etth1/, beijing-air/, physionet2012/ (default: $SPYL_DATA_ROOT, else data/, downloading)")
    p.add_argument("--dataset", type=one_of(*TIMESERIES), default=None, help=f"one of {', '.join(TIMESERIES)} (default: all)")
    p.add_argument("--weights-dir", default="weights/timeseries")
    p.add_argument("--train", action="store_true", help="retrain SPYL and DSVAE on each set first (writes --weights-dir)")
    p.add_argument("--runs-dir", default="runs/timeseries", help="with --train: the run folders")
    p.add_argument("--device", default="auto")
    p.add_argument("--fig-dir", default="fig")
    p.add_argument("--out-json", default="fig/timeseries.json")
    a = p.parse_args(argv)
    names = [a.dataset] if a.dataset else list(TIMESERIES)
    device = pick_device(a.device)
    seed_everything(0)
    t0 = time.time()
    results, all_splits, models, static = {}, {}, {}, {}
    for name in names:
        if a.train:
            retrain(name, a.data_root, a.weights_dir, a.runs_dir)
        all_splits[name] = load_splits(name, a.data_root or None)
        results[name], spyl = evaluate_dataset(name, all_splits[name], a.weights_dir, device)
        if spyl is not None:
            models[name], static[name] = spyl
        print(f"{name}: done ({time.time() - t0:.0f} s so far)", file=sys.stderr)
    print(format_table(results))
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

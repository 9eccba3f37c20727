"""Speech experiments: does s hold the speaker and d the words? The paper's TIMIT protocol on
the Free Spoken Digit Dataset (6 speakers, digits 0-9; datasets/fsdd.py), next to controls
that need no learning.

    python audio_experiments.py --data-root ../shared/audio     # the shipped weights/audio/ models
    python audio_experiments.py --train                         # retrain 3 seeds of every row first
    python audio_experiments.py --units fsdd,fsdd_200ms         # the 640 ms rows too (--train them first)
    python audio_experiments.py --search                        # the schedule's candidates on the validation utterances

- Speaker verification: each test utterance is represented by s averaged over its 200 ms
  segments (static) or by d averaged over its segments and steps (dynamic); every pair of
  test utterances is scored by cosine similarity, target = same speaker; the equal error
  rate is where false acceptances equal false rejections. Static EER should be low (s knows
  the speaker), dynamic EER high (d does not).
- Probes (probes.classify, Linear-ReLU-Linear on the same utterance codes, trained on the
  training utterances): digit and speaker accuracy from s and from d.
- Swaps you can hear: A's s with B's d (A's voice saying B's digit), decoded, turned back into
  sound by Griffin-Lim; spectrograms in fig/audio_swap.png, WAV files in fig/audio/.
Rows: SPYL and every method it is compared with (methods/; `--methods` picks some) with the same
budget on the TIMIT protocol's 200 ms segments (`fsdd_200ms`, the unit chosen on the validation
utterances; docs/speech.md), mean and std over 3 seeds (3 trained models each); `--units
fsdd,fsdd_200ms` adds the SPYL and DSVAE rows of 640 ms sequences (a whole word: `fsdd`).
Controls, scored by the same code: the utterance's mean and std over frames of the normalised
log-mel (`raw_mean_std`), its mean (`raw_mean`), an LDA of raw_mean_std fitted with the training
speakers (`lda_raw`, supervised), for the static EER; the mean absolute frame-to-frame change
(`raw_delta`) and a random code (`random`, the ceiling) for the dynamic EER.
"""
import contextlib
import json
import os
import shlex
import sys
import time

import numpy as np
import torch

from comparison import PUBLISHED_TIMIT
from jobs import train_model
from dataloader import load_splits
from datasets import fsdd
from methods import METHODS, parse_methods
from model import SPYL
from probes import classify, frozen_codes, mean_std
from utils import ArgumentParser, SPYLError, atomic_write, figure, pick_device, run_main, save_figure

# (row, the sequence unit its models are trained on): the unit names are data set names, a row's
# method the part of its name before any "_". Every method (methods/) has a 200 ms row; the
# shipped weights are those of UNITS; the 640 ms rows are one --units away.
ROWS = {**{method: "fsdd_200ms" for method in METHODS}, "spyl_640ms": "fsdd", "dsvae_640ms": "fsdd"}
UNITS = ("fsdd_200ms",)
SEEDS = (0, 1, 2)
CONTROLS = {"raw_mean_std": "static_eer", "raw_mean": "static_eer", "lda_raw": "static_eer",
            "raw_delta": "dynamic_eer", "random": "dynamic_eer"}
# The settings tried (the 640 ms unit unless named), each on top of its unit's preset and trained with seed 0, scored
# on the validation utterances (`--search`): what the preset's schedule was chosen on. The
# preset itself (60 epochs) is scored from the seed-0 models of --train, which it would repeat.
_EP15 = ["--epochs", "15", "--warmup-epochs", "5"]
SEARCH = {
    "15 epochs": ("fsdd", _EP15),
    "15 epochs, d of 2": ("fsdd", _EP15 + ["--d-dim", "2"]),
    "15 epochs, KL(d) weight 1": ("fsdd", _EP15 + ["--w-kl-d", "1.0"]),
    "15 epochs, KL(s) weight 0.01": ("fsdd", _EP15 + ["--w-kl-s", "0.01"]),
    "15 epochs, hidden 128": ("fsdd", _EP15 + ["--hidden", "128"]),
    "30 epochs, lr 2e-3": ("fsdd", ["--epochs", "30", "--warmup-epochs", "10", "--lr", "2e-3"]),
    "60 epochs, MI weight 5": ("fsdd", ["--epochs", "60", "--warmup-epochs", "20", "--w-mi", "5"]),
    "120 epochs": ("fsdd", ["--epochs", "120", "--warmup-epochs", "40"]),
    "200 ms, 120 epochs": ("fsdd_200ms", ["--epochs", "120", "--warmup-epochs", "40"]),
}
# bootstrap resamples of the test utterances per interval: 200 keep the evaluation under 2 minutes on 2 cores
RESAMPLES = 200
PROBE_HIDDEN = 64   # the probes' hidden width: wider than the 6 or 10 classes, so it is no bottleneck
FIGURES = ("static_eer", "dynamic_eer", "digit_acc_from_d", "digit_acc_from_s", "speaker_acc_from_s",
           "speaker_acc_from_d")


def equal_error_rate(scores, targets):
    """The rate at which false rejections equal false acceptances as the threshold moves over the
    scores (targets: 1 for a same-speaker pair); linear interpolation between ROC points (the
    points of scikit-learn's roc_curve, in numpy: fast enough for a bootstrap)."""
    scores, targets = np.asarray(scores, np.float64), np.asarray(targets) > 0.5
    n_pos = int(targets.sum())
    n_neg = len(targets) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise SPYLError("the EER needs both target and non-target pairs")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, hits = scores[order], targets[order]
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]  # the last pair of each distinct threshold
    tp = np.cumsum(hits)[last]
    fpr = np.r_[0.0, (last + 1 - tp) / n_neg]
    fnr = np.r_[1.0, 1 - tp / n_pos]
    i = int(np.flatnonzero(fnr <= fpr)[0])  # fpr rises and fnr falls along the curve
    if i == 0:
        return float(fpr[0])
    a, b = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    t = -a / (b - a)
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def unit_rows(codes):
    """Each code scaled to length 1, so that dot products are cosines."""
    return codes / np.linalg.norm(codes, axis=1, keepdims=True).clip(1e-12)


def pair_scores(codes, speakers):
    """Cosine similarity and same-speaker target of every pair i < j of utterance codes."""
    u = unit_rows(codes)
    i, j = np.triu_indices(len(u), k=1)
    return (u[i] * u[j]).sum(1), (speakers[i] == speakers[j]).astype(int)


def eer_interval(code_sets, speakers, resamples=RESAMPLES, seed=0):
    """95% bootstrap interval [low, high] of the EER averaged over code_sets (one per seed, the
    same utterances in each), resampling utterances with replacement: every pair of two
    different draws is scored, pairs of a draw with a copy of itself are left out."""
    cosines = [u @ u.T for u in map(unit_rows, code_sets)]
    same = speakers[:, None] == speakers[None, :]
    n = len(speakers)
    i, j = np.triu_indices(n, k=1)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        a, b = idx[i], idx[j]
        keep = a != b
        a, b = a[keep], b[keep]
        values.append(np.mean([equal_error_rate(c[a, b], same[a, b]) for c in cosines]))
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def utterance_codes(model, data, device):
    """Per utterance: s averaged over its segments, d over its segments and steps, and its labels."""
    s, d = frozen_codes(model, data, device)
    d = d.mean(1)
    utt = data.labels["utterance"]
    ids, first = np.unique(utt, return_index=True)
    s_u = np.stack([s[utt == k].mean(0) for k in ids])
    d_u = np.stack([d[utt == k].mean(0) for k in ids])
    return s_u, d_u, data.labels["speaker"][first], data.labels["digit"][first]


def eers(s, d, speakers):
    """{"static_eer", "dynamic_eer"} of utterance codes s and d (cosine over all pairs, target: same speaker)."""
    return {"static_eer": equal_error_rate(*pair_scores(s, speakers)),
            "dynamic_eer": equal_error_rate(*pair_scores(d, speakers))}


def evaluate_model(model, splits, device, seed):
    """Every figure of one trained model -> ({figure: value} (EERs and accuracies as fractions),
    its EERs on the validation utterances (what choices are made on), its test codes (s, d, speakers))."""
    s_tr, d_tr, spk_tr, dig_tr = utterance_codes(model, splits["train"], device)
    s_te, d_te, spk_te, dig_te = utterance_codes(model, splits["test"], device)
    s_va, d_va, spk_va, _ = utterance_codes(model, splits["valid"], device)
    out = eers(s_te, d_te, spk_te)
    for name, (x_tr, x_te) in (("s", (s_tr, s_te)), ("d", (d_tr, d_te))):
        out[f"digit_acc_from_{name}"] = classify(x_tr, dig_tr, x_te, dig_te, 10, seed=seed, hidden=PROBE_HIDDEN)[0]
        out[f"speaker_acc_from_{name}"] = classify(x_tr, spk_tr, x_te, spk_te, len(fsdd.SPEAKERS), seed=seed,
                                                   hidden=PROBE_HIDDEN)[0]
    return out, eers(s_va, d_va, spk_va), (s_te, d_te, spk_te)


def utterance_frames(data):
    """The real (not padded) frames of each utterance, in order: [n_frames x 40], and the
    utterances' speakers."""
    utt = data.labels["utterance"]
    ids, first = np.unique(utt, return_index=True)
    frames = []
    for k in ids:
        f = data.x[utt == k].reshape(-1, data.x.shape[2])
        frames.append(f[~np.isnan(f[:, 0])])
    return frames, data.labels["speaker"][first]


def control_codes(name, frames, seed=0):
    """One utterance code per utterance for an unsupervised control (utterance_frames)."""
    if name == "raw_mean":
        return np.stack([f.mean(0) for f in frames])
    if name == "raw_mean_std":
        return np.stack([np.r_[f.mean(0), f.std(0)] for f in frames])
    if name == "raw_delta":  # one frame utterances have no change
        return np.stack([np.abs(np.diff(f, axis=0)).mean(0) if len(f) > 1 else np.zeros(f.shape[1]) for f in frames])
    if name == "random":
        return np.random.default_rng(seed).normal(size=(len(frames), 64))
    raise SPYLError(f"unknown control {name!r}")


def evaluate_controls(splits, part="test", intervals=False):
    """{control: {its EER figure: {"mean", "std", "ci"}}}: the no-learning rows (random: 3 seeds) and
    the supervised LDA, on the utterances of `part` (the LDA fitted on the training ones); "ci"
    (eer_interval) with `intervals` only."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    (f_tr, spk_tr), (f_te, spk_te) = utterance_frames(splits["train"]), utterance_frames(splits[part])
    out = {}
    for name, eer in CONTROLS.items():
        if name == "lda_raw":
            lda = LinearDiscriminantAnalysis(n_components=len(fsdd.SPEAKERS) - 1).fit(control_codes("raw_mean_std",
                                                                                                    f_tr), spk_tr)
            codes = [lda.transform(control_codes("raw_mean_std", f_te))]
        else:
            codes = [control_codes(name, f_te, seed) for seed in (SEEDS if name == "random" else SEEDS[:1])]
        out[name] = mean_std([{eer: equal_error_rate(*pair_scores(c, spk_te))} for c in codes])
        if intervals:
            out[name][eer]["ci"] = eer_interval(codes, spk_te)
    return out


def rows_of(units, methods=tuple(METHODS)):
    """The ROWS whose models are trained on one of these units, by one of these methods."""
    return {row: unit for row, unit in ROWS.items() if unit in units and row.split("_")[0] in methods}


def parse_units(text):
    """'fsdd,fsdd_200ms' -> ('fsdd', 'fsdd_200ms'), or a one-line error naming the units there are."""
    units = tuple(dict.fromkeys(u.strip() for u in text.split(",") if u.strip()))
    known = sorted(set(ROWS.values()))
    if not units or any(u not in known for u in units):
        raise SPYLError(f"--units {text!r}: give one or more of {', '.join(known)}, comma-separated")
    return units


def weights_path(folder, row, seed):
    """weights/audio/fsdd-spyl-0.pth, weights/audio/fsdd_200ms-spyl-0.pth and the like."""
    return os.path.join(folder, f"{ROWS[row]}-{row.split('_')[0]}-{seed}.pth")


def format_table(results):
    """Our rows (mean ± std over seeds), the controls, and the published TIMIT rows."""
    r = results["fsdd"]
    pct = lambda v: f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}" if v else "-"
    ci = lambda v: f"[{100 * v['ci'][0]:.1f}, {100 * v['ci'][1]:.1f}]" if v and "ci" in v else "-"
    lines = [f"{'FSDD (ours)':<22}{'static EER':>16}{'dynamic EER':>16}{'gap':>8}{'static 95% CI':>15}"
             f"{'dynamic 95% CI':>15}"
             + "".join(f"{title:>16}" for title in ("digit|d", "digit|s", "speaker|s", "speaker|d"))]
    for row in r:
        f = r[row]
        if row in CONTROLS:
            name = row + (" (sup.)" if row == "lda_raw" else "")
            lines.append(f"{name:<22}{pct(f.get('static_eer')):>16}{pct(f.get('dynamic_eer')):>16}"
                         f"{'':>8}{ci(f.get('static_eer')):>15}{ci(f.get('dynamic_eer')):>15}")
            continue
        gap = 100 * (f["dynamic_eer"]["mean"] - f["static_eer"]["mean"])
        n = len(results.get("seeds", {}).get(row, SEEDS))
        name = f"{row} ({n} seed{'s' if n > 1 else ''})"
        lines.append(f"{name:<22}{pct(f['static_eer']):>16}{pct(f['dynamic_eer']):>16}{gap:>8.2f}"
                     + f"{ci(f['static_eer']):>15}{ci(f['dynamic_eer']):>15}"
                     + "".join(f"{pct(f[k]):>16}" for k in FIGURES[2:]))
    lines.append(f"{'TIMIT (published)':<22}")
    for name, (st, dy) in PUBLISHED_TIMIT.items():  # static / dynamic EER on TIMIT as later work reprints them
        lines.append(f"{name:<22}{st:>16.2f}{dy:>16.2f}{dy - st:>8.2f}")
    lines.append("(EER and accuracies in %; static EER: lower is better, dynamic EER: higher is better)")
    return "\n".join(lines)


@torch.no_grad()
def swap_demo(model, splits, fig_dir, pair=((0, 3), (3, 7))):
    """A's voice saying B's digit and back: spectrograms (fig/audio_swap.png) and WAV files
    (fig/audio/): the originals as Griffin-Lim hears their features, and the two swaps."""
    from scipy.io import wavfile
    test = splits["test"]
    lab = test.labels
    pick = lambda spk, dig: lab["utterance"][np.flatnonzero((lab["speaker"] == spk) & (lab["digit"] == dig))[0]]
    utts = [pick(*p) for p in pair]
    xs = [test.batch(np.flatnonzero(lab["utterance"] == u)) for u in utts]       # segments x frames x 40
    codes = [model.encode(x) for x in xs]
    s = [c[0].mean(0, keepdim=True) for c in codes]                              # the utterance's s
    # A's s with B's d, shown (and heard) where B has frames, and the other way round
    ab = model.decode(s[0].expand(len(xs[1]), -1), codes[1][2]).masked_fill(torch.isnan(xs[1]), float("nan"))
    ba = model.decode(s[1].expand(len(xs[0]), -1), codes[0][2]).masked_fill(torch.isnan(xs[0]), float("nan"))
    def raw(x):  # the real frames, unnormalised
        f = x.reshape(-1, fsdd.N_MELS).numpy()
        return f[~np.isnan(f[:, 0])] * splits["std"] + splits["mean"]
    names = [f"{fsdd.SPEAKERS[p[0]]} says {p[1]}" for p in pair]
    rows = [(f"A: {names[0]}", raw(xs[0]), "A.wav"), (f"B: {names[1]}", raw(xs[1]), "B.wav"),
            (f"A's s, B's d: {fsdd.SPEAKERS[pair[0][0]]}'s voice saying {pair[1][1]}?", raw(ab), "A_voice_B_digit.wav"),
            (f"B's s, A's d: {fsdd.SPEAKERS[pair[1][0]]}'s voice saying {pair[0][1]}?", raw(ba), "B_voice_A_digit.wav")]
    fig, axes = figure(len(rows), 1, figsize=(7, 1.9 * len(rows)))
    written = []
    for ax, (title, frames, wav) in zip(axes, rows):
        ax.imshow(frames.T, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel band", fontsize=8)
        audio = fsdd.mel_to_audio(frames)
        pcm = (np.clip(audio / max(np.abs(audio).max(), 1e-6), -1, 1) * 0.9 * 32767).astype(np.int16)
        path = os.path.join(fig_dir, "audio", wav)
        atomic_write(path, lambda f: wavfile.write(f, fsdd.RATE, pcm))
        written.append(path)
    axes[-1].set_xlabel("frame (10 ms)", fontsize=8)
    path = os.path.join(fig_dir, "audio_swap.png")
    save_figure(fig, path, dpi=90)
    return [path, *written]


def _train_one(job, quiet=False):
    """One model of a --train or --search job list, (unit, model path, run dir, data root, method,
    seed, train.py flags), a process of its own on one thread: the same floats on any machine,
    and N models on N cores at once. quiet: its progress bars and messages go to RUN_DIR.log, as
    where it runs beside others. Written in half precision."""
    unit, path, run_dir, data_root, method, seed, flags = job
    os.makedirs(os.path.dirname(run_dir) or ".", exist_ok=True)
    with open(run_dir + ".log", "w") if quiet else contextlib.nullcontext() as log:
        train_model(unit, path, run_dir, data_root, method=method, seed=seed, flags=flags, resume=True, threads=1,
                    log=log)
    SPYL.load(path).save(path, data=unit, half=True)
    return path


def train_all(jobs, workers):
    """Run the _train_one jobs whose model file is not there yet, `workers` at a time (each its own
    process, one thread each); a job list interrupted before picks up where it stopped."""
    todo = [j for j in jobs if not os.path.isfile(j[1])]
    if not todo:
        return
    workers = max(1, min(workers, len(todo)))
    print(f"training {len(todo)} model{'s' * (len(todo) > 1)}, {workers} at a time", file=sys.stderr)
    t0 = time.time()
    if workers == 1:
        for job in todo:
            _train_one(job)
        return
    from concurrent.futures import ThreadPoolExecutor, as_completed
    with ThreadPoolExecutor(workers) as pool:  # threads that wait on the jobs' processes
        running = [pool.submit(_train_one, job, True) for job in todo]
        for k, done in enumerate(as_completed(running), 1):
            print(f"[{k}/{len(todo)}] {done.result()} after {(time.time() - t0) / 60:.1f} min", file=sys.stderr)


def retrain(data_root, weights_dir, runs_dir, workers, rows=None, flags=()):
    """Train every row of `rows` (default: those of UNITS) on its unit's preset, with the train.py
    flags given on top, one model per seed, into weights_dir (half precision); seeds first, so
    that an interrupted run has every row's first seeds."""
    jobs = []
    for seed in SEEDS:
        for row, unit in (rows or rows_of(UNITS)).items():
            path = weights_path(weights_dir, row, seed)
            jobs.append((unit, path, os.path.join(runs_dir, os.path.basename(path)[:-4]), data_root,
                         row.split("_")[0], seed, list(flags)))
    train_all(jobs, workers)


def search(data_root, runs_dir, workers, out_json, weights_dir):
    """Train each SEARCH candidate (seed 0) and score it on the validation utterances, beside the
    preset's seed-0 SPYL and DSVAE models in weights_dir where they are there, and the controls
    on the same utterances: the measurements behind the presets.
    -> {candidate: {"unit", "flags", "static_eer", "dynamic_eer"}, control: {its EER figure}}."""
    # '15 epochs, d of 2' -> 15_epochs_d_of_2
    slug = lambda name: "".join(c if c.isalnum() or c == "." else "_" for c in name.replace(", ", "-"))
    paths = {name: os.path.join(runs_dir, "search", slug(name) + ".pth") for name in SEARCH}
    train_all([(unit, paths[name], paths[name][:-4], data_root, "spyl", 0, flags) for name,
               (unit, flags) in SEARCH.items()], workers)
    candidates = dict(SEARCH)
    for row in ("spyl", "dsvae"):
        if os.path.isfile(q := weights_path(weights_dir, row, 0)):
            name = f"the preset ({row}, {os.path.basename(q)})"
            candidates[name], paths[name] = (ROWS[row], ["--dsvae"] if row == "dsvae" else []), q
    splits = {unit: load_splits(unit, data_root or None) for unit in sorted({u for u, _ in candidates.values()})}
    out = {}
    for name, (unit, flags) in candidates.items():
        s, d, spk, _ = utterance_codes(SPYL.load(paths[name]), splits[unit]["valid"], "cpu")
        out[name] = {"unit": unit, "flags": flags, **eers(s, d, spk)}
        print(f"{name:<40}{100 * out[name]['static_eer']:>8.2f}{100 * out[name]['dynamic_eer']:>8.2f}   {unit} "
              f"{' '.join(flags)}")
    # the raw frames, and so the controls, are the same for either unit
    for name, figures in evaluate_controls(next(iter(splits.values())), "valid").items():
        out[name] = {figure: v["mean"] for figure, v in figures.items()}
        cells = (f"{100 * out[name][f]:>8.2f}" if f in out[name] else f"{'-':>8}"
                 for f in ("static_eer", "dynamic_eer"))
        print(f"{name + ' (control)':<40}" + "".join(cells))
    atomic_write(out_json, lambda f: json.dump(out, f, indent=1), mode="w")
    return out


def main(argv=None):
    p = ArgumentParser(description="Speech experiments on FSDD: speaker verification EER of s and d, probes, swaps.")
    p.add_argument("--data-root", default="",
                   help="folder holding fsdd/recordings.tar.gz (default: $SPYL_DATA_ROOT, else data/, downloading)")
    p.add_argument("--weights-dir", default="weights/audio")
    p.add_argument("--train", action="store_true",
                   help="retrain 3 seeds of every row of --units first (writes --weights-dir)")
    p.add_argument("--units", default=",".join(UNITS),
                   help="the sequence units whose rows are trained and scored: fsdd_200ms, fsdd (640 ms), or both")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"the methods whose rows are trained and scored (default: all of {', '.join(METHODS)})")
    p.add_argument("--train-flags", default="",
                   help="with --train: train.py flags on top of the preset for every model, "
                   "e.g. \"--epochs 120 --warmup-epochs 40\" (use other --weights-dir and --runs-dir)")
    p.add_argument("--runs-dir", default="runs/audio", help="with --train or --search: the run folders")
    p.add_argument("--search", action="store_true",
                   help="train the SEARCH candidates (seed 0) and print their validation EERs, then stop")
    p.add_argument("--search-json", default="fig/audio_search.json",
                   help="with --search: where the candidates' figures go")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="with --train or --search: models trained at once, one core each")
    p.add_argument("--device", default="auto")
    p.add_argument("--fig-dir", default="fig")
    p.add_argument("--out-json", default="fig/audio.json")
    a = p.parse_args(argv)
    device = pick_device(a.device)
    t0 = time.time()
    if a.jobs < 1:
        raise SPYLError(f"--jobs {a.jobs}: give at least 1")
    if a.search:
        search(a.data_root, a.runs_dir, a.jobs, a.search_json, a.weights_dir)
        print(f"wrote {a.search_json} in {time.time() - t0:.0f} s")
        return
    rows = rows_of(parse_units(a.units), parse_methods(a.methods))
    if a.train:
        retrain(a.data_root, a.weights_dir, a.runs_dir, a.jobs, rows, shlex.split(a.train_flags))
    # every seed whose model is there (--train makes SEEDS of each row)
    paths = {row: [(seed, q) for seed in SEEDS if os.path.isfile(q := weights_path(a.weights_dir, row,
                                                                                   seed))] for row in rows}
    missing = [row for row in rows if not paths[row]]
    if missing:
        flag = "" if set(rows.values()) == set(UNITS) else f" --units {a.units}"
        flag += "" if set(parse_methods(a.methods)) == set(METHODS) else f" --methods {a.methods}"
        raise SPYLError(f"no {weights_path(a.weights_dir, missing[0], SEEDS[0])}; train the models with `python "
                        f"audio_experiments.py --train{flag}`")
    splits = {unit: load_splits(unit, a.data_root or None) for unit in sorted(set(rows.values()))}
    results = {"fsdd": {}, "validation": {}, "seeds": {row: [seed for seed, _ in paths[row]] for row in rows}}
    for row, unit in rows.items():
        runs = [evaluate_model(SPYL.load(q, map_location=device), splits[unit], device, seed) for seed, q in paths[row]]
        results["fsdd"][row], results["validation"][row] = mean_std([t for t, _, _ in runs]), mean_std([v for _, v,
                                                                                                        _ in runs])
        speakers = runs[0][2][2]
        for k, eer in enumerate(("static_eer", "dynamic_eer")):
            results["fsdd"][row][eer]["ci"] = eer_interval([codes[k] for _, _, codes in runs], speakers)
    # the raw frames, and so the controls, are the same for either unit
    results["fsdd"].update(evaluate_controls(next(iter(splits.values())), intervals=True))
    print(format_table(results))
    atomic_write(a.out_json, lambda f: json.dump(results, f, indent=1), mode="w")
    demo = next((row for row in rows if row.startswith("spyl")), None)  # the swaps you can hear are SPYL's
    written = swap_demo(SPYL.load(paths[demo][0][1]), splits[rows[demo]], a.fig_dir) if demo else []
    print(f"wrote {', '.join([a.out_json, *written])} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    run_main(main)

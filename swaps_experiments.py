"""Swap experiments: how well does a model separate appearance from motion?

    python swaps_experiments.py                          # weights/model.pth, judged on the Sprites test set -> fig/
    python swaps_experiments.py --weights my_model.pth   # another model -> my_model_eval/ beside it
    python swaps_experiments.py --split train --sequences 2664 --repeats 1   # choosing a schedule: training sequences
    python swaps_experiments.py --markdown fig/swaps_real.json fig/swaps.json   # the results table
    python swaps_experiments.py --train spyl:1,dbse:0    # the methods comparison: train, score, keep the logs

The protocol and its figures are in evaluation.py. This script runs it on a model file, with
every judge of the model's data set and the pixel oracle, prints the table and writes the JSON;
and draws labelled swap grids (PNG and animated GIF) and static-kept samples.
"""
import io
import json
import os
import re
import shutil
import sys
import time

import numpy as np
import torch

from dataloader import ATTRIBUTES, AUDIO, N_CHARACTERS, TIMESERIES, SequenceData, load_dataset
from evaluation import Stages, compare_table, evaluate, evaluation_layout, format_table, markdown_rows
from jobs import train_model
from judging import judge_paths, load_judges
from methods import TITLES
from model import SPYL
from oracle import REAL_FRAME_RMS, PixelOracle
from utils import (ArgumentParser, SPYLError, between, atomic_write, figure, load_checkpoint, pick_device,
                   resolve_precision, run_main, save_figure, save_labelled_grid,
                   seed_everything, sequence_grid, sha256_file)

RELEASED = os.path.join("weights", "model.pth")
# --train: the run folders (git-ignored, with the 21 MB models), what is shipped of each run (its
# logs), and each run's report, which compare.py reads
RUNS_DIR = os.path.join("runs", "methods")
KEPT_DIR = os.path.join("weights", "runs", "methods")
REPORTS_DIR = os.path.join("fig", "methods", "sprites")
# The budget every method's Sprites run shares: the cpu preset, in fp32 on any CPU, so that no
# figure depends on whether the machine had bf16 units.
SPRITES_BUDGET = ("--preset", "cpu", "--precision", "fp32")
PROGRESS_BAR = re.compile(r"\d%\|")   # a tqdm bar: "53%|█████"


@torch.no_grad()
def swap_figures(model, data, device, fig_dir, pairs, seed=0, oracle=None):
    """Labelled swap grid per pair (rows: A, B, A's appearance with B's motion, B's with A's) as PNG
    and GIF, and static-kept samples (appearance kept, motion from the prior; with the oracle's
    reading where there is an oracle); returns the paths written."""
    from PIL import Image
    model.eval()
    seed_everything(seed)
    written = []
    xa, xb = data.batch(np.array([p[0] for p in pairs]), device), data.batch(np.array([p[1] for p in pairs]), device)
    ab, ba = model.swap(xa, xb)
    rows = [r for i in range(len(pairs)) for r in (xa[i], xb[i], ab[i], ba[i])]
    labels = []
    for i, (a, b) in enumerate(pairs, start=1):
        labels += [f"pair {i}: A = test #{a}", f"pair {i}: B = test #{b}", "A's look, B's motion",
                   "B's look, A's motion"]
    path = os.path.join(fig_dir, "swap.png")
    save_labelled_grid(rows, labels, path)
    written.append(path)
    T = xa.shape[1]
    frames = []
    for t in range(T):  # each frame of the GIF is column t of every row
        col = sequence_grid([[r[t]] for r in rows])
        frames.append(Image.fromarray(col).resize((col.shape[1] * 2, col.shape[0] * 2), Image.NEAREST))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=120, loop=0)
    path = os.path.join(fig_dir, "swap.gif")
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    written.append(path)
    # what the static figures judge: each test sequence, then its appearance with motions from the prior
    rows, labels, marks = [], [], []
    for i in sorted({p[0] for p in pairs}):
        rows.append(data.batch(np.array([i]), device)[0])
        labels.append(sequence_label(data, i))
        marks.append(None)
        r, lab, m = static_kept_rows(model, data, i, 3, device, oracle)
        rows, labels, marks = rows + r, labels + lab, marks + m
    path = os.path.join(fig_dir, "static_kept.png")
    save_labelled_grid(rows, labels, path, label_width=470, marks=marks)
    written.append(path)
    return written


def sequence_label(data, i):
    """'test #i: skin 2 pants 0 ...': a test sequence's row label with its attributes."""
    return f"test #{i}: " + " ".join(f"{a} {v}" for a, v in zip(ATTRIBUTES, data.labels[i, 1:]))


@torch.no_grad()
def static_kept_rows(model, data, i, n, device, oracle=None, name=""):
    """n samples with test sequence i's appearance (s's mean) and motions from the prior: (rows,
    labels, marks). The oracle, where there is one, reads each sample's attributes and outlines in
    red each frame not near a real frame of the character (a blend)."""
    x = data.batch(np.array([i]), device)
    T = x.shape[1]
    s_mean = model.encode(x)[0]
    samples = model.decode(s_mean.expand(n, -1), model.sample_dynamics(n, T))
    read, rms = (oracle.read(samples, np.repeat(data.labels[i:i + 1, 1:], n, axis=0), distances=True)
                 if oracle is not None else (None, None))
    labels = []
    for j in range(n):
        text = f"{name + ': ' if name else ''}kept look, prior motion {j + 1}"
        if read is not None:
            wrong = [f"{a} {v}" for a, v, t in zip(ATTRIBUTES, read[j], data.labels[i, 1:]) if v != t]
            text += ": oracle " + ("reads all 4 right" if not wrong else "reads " + ", ".join(wrong))
            text += f"; {int((rms[j] >= REAL_FRAME_RMS).sum())} of {T} frames blended"
        labels.append(text)
    return list(samples), labels, list(rms >= REAL_FRAME_RMS) if rms is not None else [None] * n


@torch.no_grad()
def methods_figure(models, data, device, indices, path, n=2, seed=0, oracle=None):
    """For the same test sequences, each model's static-kept samples one under another: a test
    sequence, then n samples of every model (name, model) with its appearance and the model's own
    prior motions, drawn from the same seed. Writes the PNG (256 colours) at path."""
    rows, labels, marks = [], [], []
    for i in indices:
        rows.append(data.batch(np.array([i]), device)[0])
        labels.append(sequence_label(data, i))
        marks.append(None)
        for name, model in models:
            seed_everything(seed + i)  # every model draws its motions from the same generator state
            r, lab, m = static_kept_rows(model.eval(), data, i, n, device, oracle, name)
            rows, labels, marks = rows + r, labels + lab, marks + m
    save_labelled_grid(rows, labels, path, label_width=560, marks=marks, palette=True)


def plot_swap_curves(run_dirs, path):
    """Swap action and mean static accuracy against epoch for each run folder (from log.jsonl)."""
    fig, axes = figure(1, 2, figsize=(9, 3.2))
    for run in run_dirs:
        log_path = os.path.join(run, "log.jsonl")
        if not os.path.isfile(log_path):
            raise SPYLError(f"{log_path} does not exist; pass run folders written by train.py")
        with open(log_path) as f:
            rows = [r for r in map(json.loads, f) if r.get("swap")]
        if not rows:
            raise SPYLError(f"{log_path} has no swap evaluations; train with --eval-every N and a judge in weights/")
        epochs = [r["epoch"] for r in rows]
        axes[0].plot(epochs, [100 * r["swap"]["action"] for r in rows], marker="o",
                     label=os.path.basename(os.path.normpath(run)))
        axes[1].plot(epochs, [100 * np.mean([r["swap"][a] for a in ATTRIBUTES]) for r in rows], marker="o")
    for ax, title, chance in ((axes[0], "action accuracy (%)", 100 / 9), (axes[1], "mean static accuracy (%)",
                                                                          100 / 6)):
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 100)
    axes[0].legend()
    save_figure(fig, path, dpi=90)


def default_fig_dir(weights, real=False):
    """fig/ for the released model and the real sequences (the files the README shows); for any
    other model a folder beside it (runs/x/model.pth -> runs/x/model_eval/)."""
    if real or os.path.abspath(weights) == os.path.abspath(RELEASED):
        return "fig"
    return os.path.splitext(weights)[0] + "_eval"


def check_video_model(ckpt, path):
    """Refuse, in one line naming the script that evaluates it, a model of another modality: the
    swap experiments judge video (Sprites and the built-in set)."""
    data = ckpt.get("data") if isinstance(ckpt, dict) else None
    script = "timeseries_experiments.py" if data in TIMESERIES else "audio_experiments.py" if data in AUDIO else None
    if script:
        raise SPYLError(f"{path} is a model of the {data} data set, not of video; the swap experiments judge Sprites "
                        f"and the built-in set. Evaluate it with `python {script}`")


def load_video_model(path, device):
    """(model, data set name) from a model file or checkpoint of a video data set."""
    ckpt = load_checkpoint(path)
    check_video_model(ckpt, path)
    return SPYL.from_checkpoint(ckpt, path).to(device).eval(), ckpt.get("data", "sprites")


def figure_pairs(text, seed, n):
    """The test pairs of the figures: --pairs ('0:9,100:2000') or 3 at random from seed."""
    rng = np.random.default_rng(seed)
    try:
        pairs = ([tuple(int(i) for i in pair.split(":")) for pair in text.split(",")] if text
                 else [tuple(int(i) for i in rng.choice(n, 2, replace=False)) for _ in range(3)])
    except ValueError:
        raise SPYLError(f"--pairs must look like 0:9,100:2000, got {text!r}") from None
    if any(not 0 <= i < n for pair in pairs for i in pair):
        raise SPYLError(f"--pairs indices must be in 0..{n - 1}")
    return pairs


def build_oracle(train, test):
    """The pixel oracle of the data, or None (with a note) where it holds too few characters."""
    oracle = PixelOracle(train, test)
    if len(oracle.rows) < N_CHARACTERS:  # a subset of characters: neighbours would be missing
        print(f"note: the data hold {len(oracle.rows)} of {N_CHARACTERS} characters, too few for the pixel "
              "oracle; skipped", file=sys.stderr)
        return None
    return oracle


def draw_methods_figure(a, device):
    """--static-kept: every model's static-kept samples of the same test sequences, one figure."""
    models = [load_video_model(path, device) for path in a.static_kept]
    if any(d != models[0][1] for _, d in models):
        raise SPYLError("--static-kept models must share one data set, got " + ", ".join(d for _, d in models))
    train, test = load_dataset(models[0][1], a.data_dir, a.sheets or None, a.chars or None)
    oracle = None if a.no_oracle else build_oracle(train, test)
    indices = sorted({p[0] for p in figure_pairs(a.pairs, a.seed, len(test))})
    path = a.out_png or os.path.join(a.fig_dir or default_fig_dir(a.static_kept[0]), "static_kept_methods.png")
    names = [a.label] if a.label and len(models) == 1 else [TITLES[m.config.method] for m, _ in models]
    methods_figure(list(zip(names, (m for m, _ in models))), test, device, indices, path, n=a.samples,
                   seed=a.seed, oracle=oracle)
    print(f"wrote {path}")


def read_report(path):
    """A swaps JSON report this script wrote, or one line saying why it cannot be read."""
    try:
        with open(path) as f:
            report = json.load(f)
        report["results"]
        return report
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SPYLError(f"cannot read {path} as a swaps JSON report ({type(e).__name__}: {e})") from None


def parse_runs(text):
    """--train's 'spyl:1,dbse:0' -> [("spyl", 1), ("dbse", 0)], or one line saying what is wrong."""
    runs = []
    for item in text.split(","):
        method, _, seed = item.strip().partition(":")
        if method not in TITLES or not seed.isdigit():
            raise SPYLError(f"--train takes METHOD:SEED items, comma-separated (e.g. spyl:1,dbse:0), each method one "
                            f"of {', '.join(TITLES)}; got {item.strip()!r}")
        runs.append((method, int(seed)))
    return runs


def without_progress_bars(text):
    """A job's output as a log keeps it: every line but the progress bars' redraws."""
    lines = text.replace("\r", "\n").split("\n")
    return "".join(line + "\n" for line in lines if line.strip() and not PROGRESS_BAR.search(line))


def train_and_score(runs, dataset="sprites", flags=SPRITES_BUDGET, score_flags=(), runs_dir=RUNS_DIR,
                    kept_dir=KEPT_DIR, reports_dir=REPORTS_DIR):
    """--train: each (method, seed) of runs trained on `dataset` with train.py `flags` (default: the
    comparison's budget), unless its model is there (a run cut short goes on from its checkpoint);
    scored as every reported model is, into reports_dir/METHOD-SEED.json, unless that report is of
    this very model; its log, prior fit and output (without progress bars) kept in
    kept_dir/DATASET-METHOD-SEED/; and, from a method's first run, its static-kept samples of the
    figures' test sequences in reports_dir/METHOD.png. Returns the reports."""
    reports = []
    for method, seed in runs:
        name, label = f"{dataset}-{method}-{seed}", f"{TITLES[method]}, seed {seed}"
        run_dir = os.path.join(runs_dir, name)
        model_path, output = os.path.join(run_dir, "model.pth"), run_dir + ".out"
        if not os.path.isfile(model_path):
            os.makedirs(runs_dir, exist_ok=True)
            print(f"training {name}: its output goes to {output}", file=sys.stderr)
            with open(output, "a") as log:   # a resumed run's output follows the first part's
                train_model(dataset, model_path, run_dir, method=method, seed=seed, flags=list(flags), resume=True,
                            log=log)
        report = os.path.join(reports_dir, f"{method}-{seed}.json")
        # a list run again after a stop scores only what it has not scored yet (7-8 min a model)
        if not (os.path.isfile(report) and read_report(report).get("weights_sha256") == sha256_file(model_path)):
            main(["--weights", model_path, "--fig-dir", os.path.join(run_dir, "eval"), "--precision", "fp32",
                  "--out-json", report, "--label", label, *score_flags])
        # one figure per method, not per run: about 80 KB each, and the models are not kept to draw
        # them side by side later
        strip = os.path.join(reports_dir, f"{method}.png")
        if not os.path.isfile(strip):
            main(["--static-kept", model_path, "--samples", "1", "--out-png", strip, "--label", label, *score_flags])
        keep = os.path.join(kept_dir, name)
        os.makedirs(keep, exist_ok=True)
        for file in ("log.jsonl", "fit_prior.json"):   # a method without a learned prior fits none
            if os.path.isfile(os.path.join(run_dir, file)):
                shutil.copyfile(os.path.join(run_dir, file), os.path.join(keep, file))
        if os.path.isfile(output):   # absent where the model was trained by hand
            with open(output) as f:
                text = without_progress_bars(f.read())
            atomic_write(os.path.join(keep, "train.out"), lambda f: f.write(text), mode="w")
        reports.append(report)
    return reports


def main(argv=None):
    p = ArgumentParser(description="Swap experiments with a judge ensemble and the pixel oracle.")
    p.add_argument("--weights", default=RELEASED, help="a model (SPYL.save) or a train.py checkpoint")
    p.add_argument("--judges", nargs="+", default=None, metavar="PATH",
                   help="default: every judge for the model's data set in weights/")
    p.add_argument("--no-oracle", action="store_true", help="skip the pixel oracle")
    p.add_argument("--repeats", type=between(1, 1000), default=5, help="fresh draws of every sample; 1 to 1000")
    p.add_argument("--seed", type=between(0, 2**32 - 1), default=0)
    p.add_argument("--pairs", default="", help="test pairs for the figure, e.g. 0:9,100:2000 (default: 3 at random)")
    p.add_argument("--sheets", default="", help="folder of sprite-sheet parts or pre-built npy files")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--chars", type=between(0, N_CHARACTERS), default=0,
                   help="built-in set only: this many characters (0: all)")
    p.add_argument("--sequences", type=between(0, 10**6), default=0,
                   help="evaluate the first N test sequences only, a quick look (0, the default: all, as every "
                        "reported figure)")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="train: judge samples of the training sequences instead, where a schedule is chosen (Sprites "
                        "has no validation split, and nothing is chosen on test); writes the JSON only")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="the decoder and the judges in bf16 autocast (auto: where the hardware has bf16 units, CUDA "
                        "or a CPU with AMX or AVX512-BF16) or fp32; encoding and the pixel oracle are always fp32")
    p.add_argument("--fig-dir", default="",
                   help=f"where the JSON and figures go (default: fig/ for the released {RELEASED} and --real; "
                   "for any other model a folder beside it, my_model.pth -> my_model_eval/, so fig/'s shipped files "
                   "stay as shipped)")
    p.add_argument("--out-json", default="", help="default: <fig-dir>/swaps.json")
    p.add_argument("--label", default="",
                   help="the row's name in the JSON and the --markdown table (default: the --weights path), and "
                   "in --static-kept's figure of one model (default: its method)")
    p.add_argument("--curves", nargs="+", metavar="RUN_DIR",
                   help="only plot swap accuracy against epoch for these train.py run folders")
    p.add_argument("--markdown", nargs="+", metavar="JSON",
                   help="only print the README results table from these swaps JSON files")
    p.add_argument("--compare", nargs=2, metavar=("BASE", "OTHER"),
                   help="only print the figures of two swaps JSON files side by "
                   "side, with their difference in units of the std over repeats of --spread-from (default: BASE)")
    p.add_argument("--spread-from", default="", metavar="JSON",
                   help="with --compare: the run of several repeats whose std is the unit")
    p.add_argument("--profile", action="store_true",
                   help="print the seconds spent in each stage (encode, draw, decode, each judge, oracle)")
    p.add_argument("--static-kept", nargs="+", metavar="MODEL",
                   help="only draw, for the same test sequences (--pairs' first members, or 3 at random), each "
                   "model's static-kept samples one under another: <fig-dir>/static_kept_methods.png (default fig-dir: "
                   "beside the first model)")
    p.add_argument("--samples", type=between(1, 10), default=2,
                   help="with --static-kept: samples of each model per test sequence; 1 to 10")
    p.add_argument("--out-png", default="", help="with --static-kept: the figure's path instead")
    p.add_argument("--train", metavar="METHOD:SEED,...",
                   help="only run the methods comparison's Sprites runs, e.g. spyl:1,dbse:0: train each with the cpu "
                   f"preset in fp32 (a run cut short goes on), score it into {REPORTS_DIR}/METHOD-SEED.json, keep its "
                   f"logs in {KEPT_DIR}/ (then `python compare.py --update`)")
    p.add_argument("--real", action="store_true",
                   help="score the real test sequences themselves (the ceiling of every figure) "
                   "instead of a model; writes <fig-dir>/swaps_real.json")
    a = p.parse_args(argv)
    if (a.out_png or a.samples != 2) and not a.static_kept:
        raise SPYLError("--samples and --out-png shape the figure of --static-kept; pass the models to draw with "
                        "--static-kept MODEL ...")
    if a.curves:
        path = os.path.join(a.fig_dir or "fig", "swap_accuracy.png")
        plot_swap_curves(a.curves, path)
        print(f"wrote {path}")
        return
    if a.markdown:
        print(markdown_rows([read_report(path) for path in a.markdown]))
        return
    if a.compare:
        base, other = (read_report(path)["results"] for path in a.compare)
        print(compare_table(base, other, read_report(a.spread_from)["results"] if a.spread_from else base))
        return
    if a.train:
        data = ["--data-dir", a.data_dir] + (["--sheets", a.sheets] if a.sheets else [])
        reports = train_and_score(parse_runs(a.train), flags=[*SPRITES_BUDGET, *data], score_flags=data)
        print(f"wrote {', '.join(reports)}; `python compare.py --update` puts them in docs/methods.md and the README")
        return
    device = pick_device(a.device)
    if a.static_kept:
        draw_methods_figure(a, device)
        return
    a.fig_dir = a.fig_dir or default_fig_dir(a.weights, a.real)
    amp_dtype = resolve_precision(a.precision, device)
    if a.real:
        model, data_name, a.weights = None, "sprites", "real test sequences"
    else:
        model, data_name = load_video_model(a.weights, device)
        model = evaluation_layout(model, device, amp_dtype)
    paths = a.judges or judge_paths(data_name)
    judges = load_judges(paths, data_name, device)
    train, test = load_dataset(data_name, a.data_dir, a.sheets or None, a.chars or None)
    oracle = None if a.no_oracle else build_oracle(train, test)
    if a.split == "train":  # the oracle was built from both splits: it knows every character either way
        test = train
    if a.sequences and a.sequences < len(test):  # after the oracle, which renders characters from the whole split
        test = SequenceData(test.x[:a.sequences], test.labels[:a.sequences], test.name)
    precision = "bf16" if amp_dtype else "fp32"
    title = (f"{a.weights} on the {data_name} {a.split} set ({len(test)} sequences), {a.repeats} repeats, "
             f"seed {a.seed}, {precision}")
    print(f"{title}, {len(judges)} judges{' and the pixel oracle' if oracle else ''}", file=sys.stderr)
    stages, t0 = Stages(), time.perf_counter()
    results = evaluate(model, judges, test, device, a.repeats, a.seed, oracle, stages=stages, amp_dtype=amp_dtype)
    seconds = time.perf_counter() - t0
    print(f"evaluated in {seconds / 60:.1f} min" + (f"; where the time went:\n{stages.table()}" if a.profile else ""),
          file=sys.stderr)
    print(f"{title}; judges: {', '.join(judges)}")
    print(format_table(results))
    out_json = a.out_json or os.path.join(a.fig_dir,
                                          "swaps" + "_real" * a.real + "_train" * (a.split == "train") + ".json")
    report = {"weights": a.label or a.weights, "weights_sha256": None if a.real else sha256_file(a.weights),
              "judges": {os.path.basename(p): sha256_file(p) for p in paths}, "oracle": oracle is not None,
              "data": data_name, f"{a.split}_sequences": len(test), "seed": a.seed, "repeats": a.repeats,
              "precision": precision, "seconds": round(seconds, 1),
              "stage_seconds": {k: round(v, 1) for k, v in stages.seconds.items()}, "results": results}
    atomic_write(out_json, lambda f: json.dump(report, f, indent=1), mode="w")
    if a.real or a.split == "train":
        print(f"wrote {out_json}")
        return
    pairs = figure_pairs(a.pairs, a.seed, len(test))
    written = swap_figures(model, test, device, a.fig_dir, pairs, a.seed, oracle)
    print(f"wrote {out_json} and {', '.join(written)}")


if __name__ == "__main__":
    run_main(main)

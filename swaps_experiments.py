"""Swap experiments: how well does a model separate appearance from motion?

    python swaps_experiments.py                          # weights/model.pth, judged on the Sprites test set
    python swaps_experiments.py --weights runs/spyl/checkpoint.pt --repeats 5
    python swaps_experiments.py --split train --sequences 2664 --repeats 1   # choosing a schedule: samples of training sequences
    python swaps_experiments.py --markdown fig/swaps.json fig/swaps_dsvae.json   # the README table

Quantitative (the customary protocol, over the whole test set, no batch dropped):
- action accuracy: keep each test sequence's dynamic posterior means, draw
  s ~ N(0, I), decode, ask the judges for the action;
- static accuracy per attribute: keep the static posterior mean, draw the
  dynamics from the prior, decode, ask the judges for skin, pants, top, hair;
- leakage: the appearance heads on the action-kept samples (chance 1/6) and the
  action head on the static-kept samples (chance 1/9);
- IS, H(y|x), H(y) of each judge's action softmax on the action-kept samples;
- oracle_<attr>: the static accuracy read by the pixel oracle (oracle.py), no classifier;
- oracle_real_frames: the fraction of static-kept frames within RMS 0.03 of a real frame of
  their character (blends of poses are not), and the same for the reconstructions
  (posterior s and d, deterministic: one pass), what the prior's samples should reach.
Every judge of the ensemble (judge.py) reads the same generated sequences; each
figure is the mean over judges, its standard deviation over --repeats fresh
draws, each judge's own mean and the judges' spread (max - min).
Visual: labelled swap grids (PNG and animated GIF) and static-kept samples in fig/.
"""
import contextlib
import io
import json
import math
import os
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from dataloader import ATTRIBUTES, AUDIO, N_CHARACTERS, TIMESERIES, SequenceData, load_dataset
from judge import inception_metrics, judge_paths, load_judges
from model import SPYL
from oracle import REAL_FRAME_RMS, PixelOracle, variants_read
from utils import (ArgumentParser, SPYLError, autocast, between, cpu_has_bf16_units, atomic_write, figure, load_checkpoint, pick_device, resolve_precision, run_main, save_figure, save_labelled_grid,
                   seed_everything, sequence_grid, sha256_file)

INFO_FIGURES = ("IS", "H(y|x)", "H(y)")
ORACLE_FACTORS = tuple(f"oracle_{a}" for a in ATTRIBUTES)
# Judges that disagree by more than this on a figure get it flagged: 1 point of accuracy; 0.05 on IS and the entropies.
FLAG = {"accuracy": 0.01, "info": 0.05}
RELEASED = os.path.join("weights", "model.pth")
BATCH = 252  # 28 whole characters of the test set (9 sequences each), so the oracle renders each character once


JUDGE_FIGURES = ("action", *ATTRIBUTES, "action|static_kept", *(f"{a}|action_kept" for a in ATTRIBUTES))
ORACLE_GROUP = 6  # repeats of a batch read by the oracle at once (with 5 repeats and the reconstructions: all), about 0.6 GB
LATER = 1  # the step from which the "from step 2" figures count: a prior chain's first step is a blend by construction


class Stages:
    """Seconds spent per stage of an evaluation (encode, draw, decode, each judge, oracle), and
    the progress bar that shows which stage is running."""

    def __init__(self, bar=None):
        self.seconds, self.bar = {}, bar

    @contextlib.contextmanager
    def __call__(self, name):
        """Time the body of a `with` under this stage's name (times add up over calls)."""
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=False)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def table(self):
        """Stage times as text, largest first, with their share of the total."""
        total = sum(self.seconds.values()) or 1.0
        rows = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        return "\n".join(f"  {k:<24}{v:8.1f} s {100 * v / total:5.1f}%" for k, v in rows) + f"\n  {'total':<24}{total:8.1f} s"


def evaluation_layout(model, device=None, amp_dtype=None):
    """The model laid out as the evaluation runs it: channels-last for the conv frame nets
    (measured: decoding and judging channels-last frames is 1.4-1.5x faster on a CPU), except
    in bf16 on a CPU without bf16 units, where the channels-last bf16 kernels are emulated
    (measured on such a CPU: decoding 10x slower than contiguous)."""
    emulated = amp_dtype is not None and device is not None and device.type == "cpu" and not cpu_has_bf16_units()
    return model.to(memory_format=torch.channels_last) if model.config.frame_net == "conv" and not emulated else model


def batches_of(n, batch_size=BATCH):
    """Index arrays of consecutive batches covering 0..n-1, the last one partial."""
    return [np.arange(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


@torch.no_grad()
def draw_codes(model, n, T, repeats, batch_size=BATCH):
    """The random parts of the protocol for `repeats` draws: per repeat, s ~ N(0, I) for the
    action-kept samples (n x s_dim) and the per-step means of a prior chain for the static-kept
    ones (n x T x d_dim), drawn batch by batch in the order a single pass over the data draws
    them, so a seed gives the same samples however the scoring loop is ordered."""
    draws = []
    for _ in range(repeats):
        s, d = zip(*[(model.sample_static(len(idx)), model.sample_dynamics(len(idx), T)) for idx in batches_of(n, batch_size)])
        draws.append((torch.cat(s), torch.cat(d)))
    return draws


@torch.no_grad()
def swap_scores(model, judges, data, device, oracle=None, repeats=1, batch_size=BATCH, stages=None, amp_dtype=None):
    """`repeats` draws of every figure over the whole of data (no partial batch dropped), every
    judge reading the same generated sequences. judges: {name: Judge}. model None reads the real
    sequences in place of both kinds of sample: the ceiling of every figure (nothing is drawn,
    so one pass serves every repeat).

    Nothing is done twice: in eval mode the posterior means are the same in every repeat, so
    each batch is encoded once; the draws of every repeat are made up front in the order one
    pass per repeat would make them (draw_codes); then each batch is decoded and judged per
    repeat, and its static-kept samples of ORACLE_GROUP repeats at a time (with 5 repeats: all of
    them and the reconstructions) are read by the oracle together, so the renders of each
    character are built once per group.

    amp_dtype (torch.bfloat16, or None for fp32) is the autocast of the decoder and the judges.
    Encoding and the oracle stay in fp32: the oracle's squared distances are |a|^2 + |b|^2 - 2 a.b
    with a.b near 10^3, and a bf16 product rounds it by several units, about the size of the
    real-frame threshold itself (0.03^2 x 12288 = 11).

    Returns (per repeat: ({judge: {figure: value}}, {oracle figure: value}, empty without an
    oracle), the reconstructions' oracle_real_frames or None)."""
    stages = stages or Stages()
    if model is not None:
        model.eval()
    T = data.x.shape[1]
    passes = 1 if model is None else repeats
    draws = None
    if model is not None:
        with stages("draw"):
            draws = draw_codes(model, len(data), T, repeats, batch_size)
    correct = [{name: dict.fromkeys(JUDGE_FIGURES, 0.0) for name in judges} for _ in range(passes)]
    probs = [{name: [] for name in judges} for _ in range(passes)]
    oracle_correct = np.zeros((passes, 2, len(ATTRIBUTES)))                 # repeat x (all steps, from step 2) x factor
    real_by_step = np.zeros((passes, T))
    recon_real = np.zeros(1)
    for idx in batches_of(len(data), batch_size):
        with stages("encode"):
            x = data.batch(idx, device)
            if model is not None:
                s_mean, _, d_mean, _ = model.encode(x)
        y = torch.from_numpy(data.labels[idx]).to(device)
        truth = data.labels[idx, 1:]

        def read(pending):  # the oracle reads samples of several repeats of this batch at once: one render build
            with stages("oracle"):
                d2, rms = oracle.distances(torch.cat([x for _, x in pending]), np.tile(truth, (len(pending), 1)))
                d2, near = d2.view(len(pending), len(idx), *d2.shape[1:]), (rms < REAL_FRAME_RMS).reshape(len(pending), len(idx), T)
                for i, (r, _) in enumerate(pending):
                    if r is None:                                          # the reconstructions
                        recon_real[0] += near[i].mean(1).sum()
                        continue
                    for j, steps in enumerate((slice(None), slice(LATER, None))):
                        oracle_correct[r, j] += (variants_read(d2[i], steps) == truth).sum(0)
                    real_by_step[r] += near[i].sum(0)
            pending.clear()

        pending = []  # (repeat, or None for the reconstructions; static-kept samples) not yet read by the oracle
        for r in range(passes):
            if model is None:
                x_action = x_static = x
            else:
                s_draw, d_draw = (t[idx[0]:idx[-1] + 1] for t in draws[r])
                with stages("decode"), autocast(device, amp_dtype):
                    x_action = model.decode(s_draw, d_mean)               # motion kept, appearance drawn
                    x_static = model.decode(s_mean, d_draw)               # appearance kept, motion drawn
            for name, judge in judges.items():
                with stages(f"judge {name}"), autocast(device, amp_dtype):
                    la = judge(x_action)
                    ls = la if x_static is x_action else judge(x_static)  # real sequences: one read serves both
                probs[r][name].append(la[0].float().softmax(1).cpu())
                c = correct[r][name]
                c["action"] += (la[0].argmax(1) == y[:, 0]).sum().item()
                c["action|static_kept"] += (ls[0].argmax(1) == y[:, 0]).sum().item()
                for k, a in enumerate(ATTRIBUTES, start=1):
                    c[a] += (ls[k].argmax(1) == y[:, k]).sum().item()
                    c[f"{a}|action_kept"] += (la[k].argmax(1) == y[:, k]).sum().item()
            if oracle is not None:
                pending.append((r, x_static))
                if len(pending) == ORACLE_GROUP:
                    read(pending)
            if stages.bar is not None:
                stages.bar.update(len(idx))
        if oracle is not None:
            if model is not None:
                with stages("decode"), autocast(device, amp_dtype):
                    pending.append((None, model.decode(s_mean, d_mean)))  # reconstructions: the realism ceiling
            read(pending)
    n = len(data)
    runs = []
    for r in range(passes):
        scores = {name: {**{k: v / n for k, v in correct[r][name].items()}, **inception_metrics(torch.cat(probs[r][name]))}
                  for name in judges}
        oracle_scores = {}
        if oracle is not None:
            oracle_scores = {**{k: float(v / n) for k, v in zip(ORACLE_FACTORS, oracle_correct[r, 0])},
                             "oracle_real_frames": float(real_by_step[r].sum() / (n * T)),
                             **{f"{k}_from_step_{LATER + 1}": float(v / n) for k, v in zip(ORACLE_FACTORS, oracle_correct[r, 1])},
                             f"oracle_real_frames_from_step_{LATER + 1}": float(real_by_step[r, LATER:].sum() / (n * (T - LATER))),
                             "oracle_real_frames_by_step": (real_by_step[r] / n).tolist()}
        runs.append((scores, oracle_scores))
    runs = runs * (repeats // passes)
    return runs, (float(recon_real[0] / n) if oracle is not None and model is not None else None)


def evaluate(model, judges, data, device, repeats=5, seed=0, oracle=None, progress=True, stages=None, amp_dtype=None):
    """Every figure over `repeats` fresh draws: {figure: {"mean", "std", "judges", "spread"}}.

    mean and std are over repeats of the judges' mean; "judges" holds each judge's mean over
    repeats and "spread" their max - min. Oracle figures have mean and std only;
    oracle_real_frames_by_step has a list of each (one per step). The bar counts sequences
    read, over every repeat, so its ETA is the whole run's; pass `stages` (a Stages) to get the
    time of each stage back; amp_dtype (torch.bfloat16, or None: fp32) is the autocast of the
    decoder and the judges (swap_scores).
    """
    seed_everything(seed)
    passes = 1 if model is None else repeats
    bar = tqdm(total=passes * len(data), desc=f"swaps ({repeats} repeat{'s' * (repeats > 1)})", unit="seq", disable=not progress,
               leave=False, file=sys.stderr, dynamic_ncols=True)
    stages = stages or Stages()
    stages.bar = None if bar.disable else bar
    try:
        runs, recon = swap_scores(model, judges, data, device, oracle, repeats, stages=stages, amp_dtype=amp_dtype)
    finally:
        bar.close()
        stages.bar = None
    results = {}
    for k in runs[0][0][next(iter(judges))]:
        if model is None and k.endswith("_kept"):  # leakage needs codes to leak through; real sequences have none
            continue
        per_judge = {name: float(np.mean([r[0][name][k] for r in runs])) for name in judges}
        per_repeat = [np.mean([r[0][name][k] for name in judges]) for r in runs]
        results[k] = {"mean": float(np.mean(per_repeat)), "std": float(np.std(per_repeat)), "judges": per_judge,
                      "spread": max(per_judge.values()) - min(per_judge.values())}
    for k in runs[0][1]:
        values = np.array([r[1][k] for r in runs])
        mean, std = values.mean(0), values.std(0)
        results[k] = {"mean": mean.tolist(), "std": std.tolist()} if values.ndim > 1 else {"mean": float(mean), "std": float(std)}
    if recon is not None:
        results["oracle_real_frames_recon"] = {"mean": recon, "std": 0.0}
    return results


def flagged(figure, result):
    """True if the judges disagree on this figure by more than the flag threshold."""
    limit = FLAG["info"] if figure in INFO_FIGURES else FLAG["accuracy"]
    return result.get("spread", 0.0) > limit


def format_table(results):
    """The figures as a plain-text table: mean over judges, std over repeats, the judges' spread and
    range, what chance would score, and a flag where the judges disagree."""
    chance = {"action": 1 / 9, "action|static_kept": 1 / 9, **{a: 1 / 6 for a in ATTRIBUTES},
              **{f"{a}|action_kept": 1 / 6 for a in ATTRIBUTES}, "IS": 1.0, "H(y|x)": math.log(9), "H(y)": 0.0,
              **{k: 1 / 6 for k in ORACLE_FACTORS}, **{f"{k}_from_step_{LATER + 1}": 1 / 6 for k in ORACLE_FACTORS}}
    lines = [f"{'figure':<32}{'mean':>10}{'std':>9}{'spread':>9}{'judges':>20}{'chance':>9}"]
    for k, v in results.items():
        if isinstance(v["mean"], list):  # one value per step
            lines.append(f"{k:<32}" + " ".join(f"{100 * z:.1f}%" for z in v["mean"]))
            continue
        fmt = (lambda z: f"{z:.4f}") if k in INFO_FIGURES else (lambda z: f"{100 * z:.2f}%")
        if "judges" in v:
            lo, hi = min(v["judges"].values()), max(v["judges"].values())
            spread, judges = fmt(v["spread"]), f"{fmt(lo)}..{fmt(hi)}"
        else:
            spread, judges = "-", "(oracle)"
        flag = "  <- judges disagree" if flagged(k, v) else ""
        lines.append(f"{k:<32}{fmt(v['mean']):>10}{fmt(v['std']):>9}{spread:>9}{judges:>20}{fmt(chance.get(k, 0.0)):>9}{flag}")
    return "\n".join(lines)


def markdown_rows(reports):
    """README results rows from swaps JSON reports: mean (std over repeats) [judges' spread], oracle beside."""
    cols = ["action", *ATTRIBUTES, *ORACLE_FACTORS, "IS", "H(y|x)", "action|static_kept", "oracle_real_frames",
            f"oracle_real_frames_from_step_{LATER + 1}"]
    head = "| weights | " + " | ".join(c.replace("|", "\\|") for c in cols) + " |"
    lines = [head, "|" + " --- |" * (len(cols) + 1)]
    for rep in reports:
        r = rep["results"]
        cells = []
        for c in cols:
            if c not in r:
                cells.append("")
                continue
            v, pct = r[c], c not in INFO_FIGURES
            val = f"{100 * v['mean']:.2f}% ({100 * v['std']:.2f})" if pct else f"{v['mean']:.3f} ({v['std']:.3f})"
            if "spread" in v:
                val += f" [{100 * v['spread']:.2f}]" if pct else f" [{v['spread']:.3f}]"
            cells.append(val)
        lines.append(f"| `{rep['weights']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
        labels += [f"pair {i}: A = test #{a}", f"pair {i}: B = test #{b}", "A's look, B's motion", "B's look, A's motion"]
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
    # the oracle outlines in red each frame that is not near a real frame of the character (a blend)
    n = 3
    rows, labels, marks = [], [], []
    for i in sorted({p[0] for p in pairs}):
        x = data.batch(np.array([i]), device)
        s_mean = model.encode(x)[0]
        samples = model.decode(s_mean.expand(n, -1), model.sample_dynamics(n, T))
        read, rms = (oracle.read(samples, np.repeat(data.labels[i:i + 1, 1:], n, axis=0), distances=True)
                     if oracle is not None else (None, None))
        rows += [x[0], *samples]
        marks += [None, *(rms >= REAL_FRAME_RMS if rms is not None else [None] * n)]
        labels.append(f"test #{i}: " + " ".join(f"{a} {v}" for a, v in zip(ATTRIBUTES, data.labels[i, 1:])))
        for j in range(n):
            text = f"kept look, prior motion {j + 1}"
            if read is not None:
                wrong = [f"{a} {v}" for a, v, t in zip(ATTRIBUTES, read[j], data.labels[i, 1:]) if v != t]
                text += ": oracle " + ("reads all 4 right" if not wrong else "reads " + ", ".join(wrong))
                text += f"; {int((rms[j] >= REAL_FRAME_RMS).sum())} of {T} frames blended"
            labels.append(text)
    path = os.path.join(fig_dir, "static_kept.png")
    save_labelled_grid(rows, labels, path, label_width=470, marks=marks)
    written.append(path)
    return written


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
        axes[0].plot(epochs, [100 * r["swap"]["action"] for r in rows], marker="o", label=os.path.basename(os.path.normpath(run)))
        axes[1].plot(epochs, [100 * np.mean([r["swap"][a] for a in ATTRIBUTES]) for r in rows], marker="o")
    for ax, title, chance in ((axes[0], "action accuracy (%)", 100 / 9), (axes[1], "mean static accuracy (%)", 100 / 6)):
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
        raise SPYLError(f"{path} is a model of the {data} data set, not of video; the swap experiments judge Sprites and the built-in set. "
                        f"Evaluate it with `python {script}`")


def main(argv=None):
    p = ArgumentParser(description="Swap experiments with a judge ensemble and the pixel oracle.")
    p.add_argument("--weights", default=RELEASED, help="a model (SPYL.save) or a train.py checkpoint")
    p.add_argument("--judges", nargs="+", default=None, metavar="PATH", help="default: every judge for the model's data set in weights/")
    p.add_argument("--no-oracle", action="store_true", help="skip the pixel oracle")
    p.add_argument("--repeats", type=between(1, 1000), default=5, help="fresh draws of every sample; 1 to 1000")
    p.add_argument("--seed", type=between(0, 2**32 - 1), default=0)
    p.add_argument("--pairs", default="", help="test pairs for the figure, e.g. 0:9,100:2000 (default: 3 at random)")
    p.add_argument("--sheets", default="", help="folder of sprite-sheet parts or pre-built npy files")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--chars", type=between(0, N_CHARACTERS), default=0, help="built-in set only: this many characters (0: all)")
    p.add_argument("--sequences", type=between(0, 10**6), default=0,
                   help="evaluate the first N test sequences only, a quick look (0, the default: all, as every reported figure)")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="train: judge samples of the training sequences instead, where a schedule is chosen (Sprites has no "
                        "validation split, and nothing is chosen on test); writes the JSON only")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="the decoder and the judges in bf16 autocast (auto: where the hardware has bf16 units, CUDA or a CPU with "
                        "AMX or AVX512-BF16) or fp32; encoding and the pixel oracle are always fp32")
    p.add_argument("--fig-dir", default="", help=f"where the JSON and figures go (default: fig/ for the released {RELEASED} and --real; "
                   "for any other model a folder beside it, my_model.pth -> my_model_eval/, so fig/'s shipped files stay as shipped)")
    p.add_argument("--out-json", default="", help="default: <fig-dir>/swaps.json")
    p.add_argument("--label", default="", help="the row's name in the JSON and the --markdown table (default: the --weights path)")
    p.add_argument("--curves", nargs="+", metavar="RUN_DIR", help="only plot swap accuracy against epoch for these train.py run folders")
    p.add_argument("--markdown", nargs="+", metavar="JSON", help="only print the README results table from these swaps JSON files")
    p.add_argument("--profile", action="store_true", help="print the seconds spent in each stage (encode, draw, decode, each judge, oracle)")
    p.add_argument("--real", action="store_true", help="score the real test sequences themselves (the ceiling of every figure) "
                   "instead of a model; writes <fig-dir>/swaps_real.json")
    a = p.parse_args(argv)
    if a.curves:
        path = os.path.join(a.fig_dir or "fig", "swap_accuracy.png")
        plot_swap_curves(a.curves, path)
        print(f"wrote {path}")
        return
    if a.markdown:
        reports = []
        for path in a.markdown:
            try:
                with open(path) as f:
                    reports.append(json.load(f))
            except (OSError, ValueError) as e:
                raise SPYLError(f"cannot read {path} as a swaps JSON report ({e})") from None
        print(markdown_rows(reports))
        return
    a.fig_dir = a.fig_dir or default_fig_dir(a.weights, a.real)
    device = pick_device(a.device)
    amp_dtype = resolve_precision(a.precision, device)
    if a.real:
        model, data_name, a.weights = None, "sprites", "real test sequences"
    else:
        ckpt = load_checkpoint(a.weights)
        check_video_model(ckpt, a.weights)
        model = SPYL.from_checkpoint(ckpt, a.weights).to(device).eval()
        model = evaluation_layout(model, device, amp_dtype)
        data_name = ckpt.get("data", "sprites")  # from_checkpoint has checked it is our dict
    paths = a.judges or judge_paths(data_name)
    judges = load_judges(paths, data_name, device)
    train, test = load_dataset(data_name, a.data_dir, a.sheets or None, a.chars or None)
    oracle = None
    if not a.no_oracle:
        oracle = PixelOracle(train, test)
        if len(oracle.rows) < N_CHARACTERS:  # a subset of characters: neighbours would be missing
            print(f"note: the data hold {len(oracle.rows)} of {N_CHARACTERS} characters, too few for the pixel oracle; skipped", file=sys.stderr)
            oracle = None
    if a.split == "train":  # the oracle was built from both splits: it knows every character either way
        test = train
    if a.sequences and a.sequences < len(test):  # after the oracle, which renders characters from the whole split
        test = SequenceData(test.x[:a.sequences], test.labels[:a.sequences], test.name)
    precision = "bf16" if amp_dtype else "fp32"
    title = f"{a.weights} on the {data_name} {a.split} set ({len(test)} sequences), {a.repeats} repeats, seed {a.seed}, {precision}"
    print(f"{title}, {len(judges)} judges{' and the pixel oracle' if oracle else ''}", file=sys.stderr)
    stages, t0 = Stages(), time.perf_counter()
    results = evaluate(model, judges, test, device, a.repeats, a.seed, oracle, stages=stages, amp_dtype=amp_dtype)
    seconds = time.perf_counter() - t0
    print(f"evaluated in {seconds / 60:.1f} min" + (f"; where the time went:\n{stages.table()}" if a.profile else ""), file=sys.stderr)
    print(f"{title}; judges: {', '.join(judges)}")
    print(format_table(results))
    out_json = a.out_json or os.path.join(a.fig_dir, "swaps" + "_real" * a.real + "_train" * (a.split == "train") + ".json")
    report = {"weights": a.label or a.weights, "weights_sha256": None if a.real else sha256_file(a.weights),
              "judges": {os.path.basename(p): sha256_file(p) for p in paths}, "oracle": oracle is not None,
              "data": data_name, f"{a.split}_sequences": len(test), "seed": a.seed, "repeats": a.repeats, "precision": precision,
              "seconds": round(seconds, 1), "results": results}
    atomic_write(out_json, lambda f: json.dump(report, f, indent=1), mode="w")
    if a.real or a.split == "train":
        print(f"wrote {out_json}")
        return
    rng = np.random.default_rng(a.seed)
    try:
        pairs = [tuple(int(i) for i in pair.split(":")) for pair in a.pairs.split(",")] if a.pairs else [tuple(rng.choice(len(test), 2, replace=False)) for _ in range(3)]
    except ValueError:
        raise SPYLError(f"--pairs must look like 0:9,100:2000, got {a.pairs!r}") from None
    if any(not 0 <= i < len(test) for pair in pairs for i in pair):
        raise SPYLError(f"--pairs indices must be in 0..{len(test) - 1}")
    written = swap_figures(model, test, device, a.fig_dir, pairs, a.seed, oracle)
    print(f"wrote {out_json} and {', '.join(written)}")


if __name__ == "__main__":
    run_main(main)

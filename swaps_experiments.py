"""Swap experiments: how well does a model separate appearance from motion?

    python swaps_experiments.py                          # weights/model.pth, judged on the Sprites test set
    python swaps_experiments.py --weights runs/spyl/checkpoint.pt --repeats 5

Quantitative (the customary protocol, over the whole test set, no batch dropped):
- action accuracy: keep each test sequence's dynamic posterior means, draw
  s ~ N(0, I), decode, ask the judge for the action;
- static accuracy per attribute: keep the static posterior mean, draw the
  dynamics from the prior, decode, ask the judge for skin, pants, top, hair;
- leakage: the appearance heads on the action-kept samples (chance 1/6) and the
  action head on the static-kept samples (chance 1/9);
- IS, H(y|x), H(y) of the judge's action softmax on the action-kept samples.
Each figure is the mean and standard deviation over --repeats fresh draws.
Visual: swap grids (PNG and animated GIF) and sample grids in fig/.
"""
import argparse
import io
import json
import math
import os
import sys

import numpy as np
import torch
from tqdm import tqdm

from dataloader import ATTRIBUTES, load_dataset
from judge import Judge, default_path
from model import SPYL
from utils import (SPYLError, atomic_write, figure, load_checkpoint, pick_device, run_main, save_figure, save_png, seed_everything,
                   sequence_grid, sha256_file)


def inception_metrics(probs):
    """IS, H(y|x), H(y) (natural log) from N x K class probabilities.

    IS = exp(mean_x KL(p(y|x) || p(y))); H(y|x) = mean entropy; H(y) = entropy of the mean.
    """
    probs = probs.double().clamp_min(1e-12)
    p_y = probs.mean(0)
    h_y_x = -(probs * probs.log()).sum(1).mean()
    h_y = -(p_y * p_y.log()).sum()
    kl = (probs * (probs.log() - p_y.log())).sum(1).mean()
    return {"IS": kl.exp().item(), "H(y|x)": h_y_x.item(), "H(y)": h_y.item()}


@torch.no_grad()
def swap_scores(model, judge, data, device, batch_size=256):
    """One draw of every figure over the whole of data (no partial batch dropped)."""
    model.eval(), judge.eval()
    correct = {k: 0.0 for k in ("action", *ATTRIBUTES, "action|static_kept", *(f"{a}|action_kept" for a in ATTRIBUTES))}
    action_probs = []
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        x, y = data.batch(idx, device), torch.from_numpy(data.labels[idx]).to(device)
        B, T = x.shape[:2]
        s_mean, _, d_mean, _ = model.encode(x)
        x_action = model.decode(model.sample_static(B), d_mean)          # motion kept, appearance drawn
        x_static = model.decode(s_mean, model.sample_dynamics(B, T))     # appearance kept, motion drawn
        la, ls = judge(x_action), judge(x_static)
        action_probs.append(la[0].float().softmax(1).cpu())
        correct["action"] += (la[0].argmax(1) == y[:, 0]).sum().item()
        correct["action|static_kept"] += (ls[0].argmax(1) == y[:, 0]).sum().item()
        for k, a in enumerate(ATTRIBUTES, start=1):
            correct[a] += (ls[k].argmax(1) == y[:, k]).sum().item()
            correct[f"{a}|action_kept"] += (la[k].argmax(1) == y[:, k]).sum().item()
    scores = {k: v / len(data) for k, v in correct.items()}
    scores.update(inception_metrics(torch.cat(action_probs)))
    return scores


def evaluate(model, judge, data, device, repeats=5, seed=0, progress=True):
    """Mean and standard deviation of every figure over `repeats` fresh draws."""
    seed_everything(seed)
    runs = [swap_scores(model, judge, data, device) for _ in tqdm(range(repeats), desc="swap repeats", disable=not progress, leave=False, file=sys.stderr)]
    return {k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs]))} for k in runs[0]}


def format_table(results):
    """The figures as a plain-text table, with what chance would score."""
    chance = {"action": 1 / 9, "action|static_kept": 1 / 9, **{a: 1 / 6 for a in ATTRIBUTES},
              **{f"{a}|action_kept": 1 / 6 for a in ATTRIBUTES}, "IS": 1.0, "H(y|x)": math.log(9), "H(y)": 0.0}
    lines = [f"{'figure':<20}{'mean':>10}{'std':>9}{'chance':>9}"]
    for k, v in results.items():
        fmt = (lambda z: f"{z:.4f}") if k in ("IS", "H(y|x)", "H(y)") else (lambda z: f"{100 * z:.2f}%")
        lines.append(f"{k:<20}{fmt(v['mean']):>10}{fmt(v['std']):>9}{fmt(chance[k]):>9}")
    return "\n".join(lines)


@torch.no_grad()
def swap_figures(model, data, device, fig_dir, pairs, seed=0):
    """Swap grid per pair (rows: A, B, A's appearance with B's motion, B's with A's) as PNG and GIF,
    and a grid of fresh samples; returns the paths written."""
    from PIL import Image
    model.eval()
    seed_everything(seed)
    written = []
    xa, xb = data.batch(np.array([p[0] for p in pairs]), device), data.batch(np.array([p[1] for p in pairs]), device)
    ab, ba = model.swap(xa, xb)
    rows = [r for i in range(len(pairs)) for r in (xa[i], xb[i], ab[i], ba[i])]
    grid = sequence_grid(rows)
    path = os.path.join(fig_dir, "swap.png")
    save_png(grid, path, scale=2)
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
    # fixed appearance with sampled motions, then fixed motion with sampled appearances
    n = 4
    s_mean, _, d_mean, _ = model.encode(xa[:1])
    fixed_s = model.decode(s_mean.expand(n, -1), model.sample_dynamics(n, T))
    fixed_d = model.decode(model.sample_static(n), d_mean.expand(n, -1, -1))
    path = os.path.join(fig_dir, "samples.png")
    save_png(sequence_grid([xa[0], *fixed_s, xa[0], *fixed_d]), path, scale=2)
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


def main(argv=None):
    p = argparse.ArgumentParser(description="Swap experiments with a judge.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", default="weights/model.pth", help="a model (SPYL.save) or a train.py checkpoint")
    p.add_argument("--judge", default="", help="default: the judge for the model's data set in weights/")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pairs", default="", help="test pairs for the figure, e.g. 0:9,100:2000 (default: 3 at random)")
    p.add_argument("--sheets", default="", help="folder of sprite-sheet parts or pre-built npy files")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--chars", type=int, default=0, help="built-in set only: this many characters")
    p.add_argument("--device", default="auto")
    p.add_argument("--fig-dir", default="fig")
    p.add_argument("--out-json", default="", help="default: <fig-dir>/swaps.json")
    p.add_argument("--curves", nargs="+", metavar="RUN_DIR", help="only plot swap accuracy against epoch for these train.py run folders")
    a = p.parse_args(argv)
    if a.curves:
        path = os.path.join(a.fig_dir, "swap_accuracy.png")
        plot_swap_curves(a.curves, path)
        print(f"wrote {path}")
        return
    device = pick_device(a.device)
    ckpt = load_checkpoint(a.weights)
    model = SPYL.from_checkpoint(ckpt, a.weights).to(device).eval()
    data_name = ckpt.get("data", "sprites")  # from_checkpoint has checked it is our dict
    judge_path = a.judge or default_path(data_name)
    if not os.path.isfile(judge_path):
        raise SPYLError(f"no judge at {judge_path}; train one with `python judge.py --dataset {data_name}`")
    judge = Judge.load(judge_path, dataset=data_name, map_location=device)
    _, test = load_dataset(data_name, a.data_dir, a.sheets or None, a.chars or None)
    results = evaluate(model, judge, test, device, a.repeats, a.seed)
    print(f"{a.weights} on the {data_name} test set ({len(test)} sequences), {a.repeats} repeats, seed {a.seed}")
    print(format_table(results))
    out_json = a.out_json or os.path.join(a.fig_dir, "swaps.json")
    report = {"weights": a.weights, "weights_sha256": sha256_file(a.weights), "judge": judge_path, "judge_sha256": sha256_file(judge_path),
              "data": data_name, "test_sequences": len(test), "seed": a.seed, "repeats": a.repeats, "results": results}
    atomic_write(out_json, lambda f: json.dump(report, f, indent=1), mode="w")
    rng = np.random.default_rng(a.seed)
    try:
        pairs = [tuple(int(i) for i in pair.split(":")) for pair in a.pairs.split(",")] if a.pairs else [tuple(rng.choice(len(test), 2, replace=False)) for _ in range(3)]
    except ValueError:
        raise SPYLError(f"--pairs must look like 0:9,100:2000, got {a.pairs!r}") from None
    if any(not 0 <= i < len(test) for pair in pairs for i in pair):
        raise SPYLError(f"--pairs indices must be in 0..{len(test) - 1}")
    written = swap_figures(model, test, device, a.fig_dir, pairs, a.seed)
    print(f"wrote {out_json} and {', '.join(written)}")


if __name__ == "__main__":
    run_main(main)

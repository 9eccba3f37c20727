"""The swap protocol: how well a model separates appearance from motion, read by judges and the oracle.

The customary protocol, over the whole test set, no batch dropped:
- action accuracy: keep each test sequence's dynamic posterior means, draw
  s ~ N(0, I), decode, ask the judges for the action;
- static accuracy per attribute: keep the static posterior mean, draw the
  dynamics from the prior, decode, ask the judges for skin, pants, top, hair;
- leakage: the appearance heads on the action-kept samples (chance 1/6) and the
  action head on the static-kept samples (chance 1/9);
- the action read in its two parts (label = 3 x motion + direction): `motion` and `direction`
  of the action-kept samples, and the same of the static-kept ones (chance 1/3 each), which say
  which code holds the facing direction, constant over a clip (docs/judging.md);
- IS, H(y|x), H(y) of each judge's action softmax on the action-kept samples;
- oracle_<attr>: the static accuracy read by the pixel oracle (oracle.py), no classifier;
- oracle_real_frames: the fraction of static-kept frames within RMS 0.03 of a real frame of
  their character (blends of poses are not), and the same for the reconstructions
  (posterior s and d, deterministic: one pass), what the prior's samples should reach.
Every judge of the ensemble (judging.py) reads the same generated sequences; each
figure is the mean over judges, its standard deviation over repeated fresh draws,
each judge's own mean and the judges' spread (max - min). `swaps_experiments.py`
runs it on a model file and draws the figures; `train.py` runs it during training.
"""
import contextlib
import math
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from dataloader import ATTRIBUTES, DIRECTIONS
from judging import inception_metrics
from oracle import REAL_FRAME_RMS, variants_read
from utils import autocast, cpu_has_bf16_units, seed_everything

INFO_FIGURES = ("IS", "H(y|x)", "H(y)")
ORACLE_FACTORS = tuple(f"oracle_{a}" for a in ATTRIBUTES)
# Judges that disagree by more than this on a figure get it flagged: 1 point of accuracy; 0.05 on IS and the entropies.
FLAG = {"accuracy": 0.01, "info": 0.05}
BATCH = 252  # 28 whole characters of the test set (9 sequences each), so the oracle renders each character once
ACTION_PARTS = ("motion", "direction")
JUDGE_FIGURES = ("action", *ACTION_PARTS, *ATTRIBUTES, "action|static_kept",
                 *(f"{p}|static_kept" for p in ACTION_PARTS), *(f"{a}|action_kept" for a in ATTRIBUTES))
# repeats of a batch read by the oracle at once (with 5 repeats and the reconstructions: all), about 0.6 GB
ORACLE_GROUP = 6
# The "_from_step_2" figures start at this step (0-based): the per-step mean of a prior chain's
# first step is the centre of every first pose, a blend by construction (docs/judging.md).
FIRST_UNBLENDED_STEP = 1


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
        lines = [f"  {k:<24}{v:8.1f} s {100 * v / total:5.1f}%" for k, v in rows]
        return "\n".join(lines) + f"\n  {'total':<24}{total:8.1f} s"


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
        s, d = zip(*[(model.sample_static(len(idx)), model.sample_dynamics(len(idx), T))
                     for idx in batches_of(n, batch_size)])
        draws.append((torch.cat(s), torch.cat(d)))
    return draws


class Tally:
    """What one repeat's reads add up to over the data: per judge, the right answers per figure
    and the action softmax of every action-kept sample; from the oracle, its right readings
    (over every step, and from FIRST_UNBLENDED_STEP on) and its real frames per step."""

    def __init__(self, judges, steps):
        self.correct = {name: dict.fromkeys(JUDGE_FIGURES, 0) for name in judges}
        self.probs = {name: [] for name in judges}
        self.oracle_correct = np.zeros((2, len(ATTRIBUTES)))   # (every step, from FIRST_UNBLENDED_STEP) x factor
        self.real_by_step = np.zeros(steps)

    def add_judged(self, name, read_action, read_static, y):
        """One judge's reads (a logit tensor per head) of a batch's action-kept and static-kept
        samples; y: B x 5 labels."""
        self.probs[name].append(read_action[0].float().softmax(1).cpu())
        c = self.correct[name]
        for kept, read in (("", read_action), ("|static_kept", read_static)):
            guess, truth, n = read[0].argmax(1), y[:, 0], len(DIRECTIONS)   # action = n * motion + direction
            c[f"action{kept}"] += (guess == truth).sum().item()
            c[f"motion{kept}"] += (guess // n == truth // n).sum().item()
            c[f"direction{kept}"] += (guess % n == truth % n).sum().item()
        for k, a in enumerate(ATTRIBUTES, start=1):
            c[a] += (read_static[k].argmax(1) == y[:, k]).sum().item()
            c[f"{a}|action_kept"] += (read_action[k].argmax(1) == y[:, k]).sum().item()

    def add_oracle(self, d2, near, truth):
        """The oracle's distances (B x T x 4 x 6) and real-frame marks (B x T) of a batch's static-kept samples."""
        for j, steps in enumerate((slice(None), slice(FIRST_UNBLENDED_STEP, None))):
            self.oracle_correct[j] += (variants_read(d2, steps) == truth).sum(0)
        self.real_by_step += near.sum(0)

    def judge_scores(self, n):
        """{judge: {figure: value}} over n sequences, IS and the entropies included."""
        return {name: {**{k: v / n for k, v in self.correct[name].items()},
                       **inception_metrics(torch.cat(self.probs[name]))}
                for name in self.correct}

    def oracle_scores(self, n):
        """{oracle figure: value} over n sequences."""
        steps, first = len(self.real_by_step), FIRST_UNBLENDED_STEP
        later = f"_from_step_{first + 1}"
        return {**{k: float(v / n) for k, v in zip(ORACLE_FACTORS, self.oracle_correct[0])},
                "oracle_real_frames": float(self.real_by_step.sum() / (n * steps)),
                **{f"{k}{later}": float(v / n) for k, v in zip(ORACLE_FACTORS, self.oracle_correct[1])},
                f"oracle_real_frames{later}": float(self.real_by_step[first:].sum() / (n * (steps - first))),
                "oracle_real_frames_by_step": (self.real_by_step / n).tolist()}


class ReconTally:
    """The reconstructions' share of real frames: the realism the prior's samples should reach."""

    def __init__(self):
        self.real = 0.0

    def add_oracle(self, d2, near, truth):
        self.real += near.mean(1).sum()


def judge_samples(judges, x_action, x_static, y, tally, stages, device, amp_dtype):
    """Every judge reads a batch's action-kept and static-kept samples into tally; where the two
    are the same sequences (real ones), one read serves both."""
    for name, judge in judges.items():
        with stages(f"judge {name}"), autocast(device, amp_dtype):
            read_action = judge(x_action)
            read_static = read_action if x_static is x_action else judge(x_static)
        tally.add_judged(name, read_action, read_static, y)


def oracle_read(oracle, waiting, truth, stages):
    """The oracle reads the static-kept samples of several tallies of one batch (waiting: list of
    (tally, samples)) with one build of the renders of its characters, then empties waiting."""
    if not waiting:
        return
    T = waiting[0][1].shape[1]
    with stages("oracle"):
        d2, rms = oracle.distances(torch.cat([x for _, x in waiting]), np.tile(truth, (len(waiting), 1)))
        d2, near = d2.view(len(waiting), -1, *d2.shape[1:]), (rms < REAL_FRAME_RMS).reshape(len(waiting), -1, T)
        for (tally, _), d2_i, near_i in zip(waiting, d2, near):
            tally.add_oracle(d2_i, near_i, truth)
    waiting.clear()


@torch.no_grad()
def swap_scores(model, judges, data, device, oracle=None, repeats=1, batch_size=BATCH, stages=None, amp_dtype=None):
    """`repeats` draws of every figure over the whole of data (no partial batch dropped), every
    judge reading the same generated sequences. judges: {name: Judge}.

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

    Returns (a Tally per repeat, the reconstructions' share of real frames or None without an oracle)."""
    stages = stages or Stages()
    model.eval()
    T = data.x.shape[1]
    with stages("draw"):
        draws = draw_codes(model, len(data), T, repeats, batch_size)
    tallies, recon = [Tally(judges, T) for _ in range(repeats)], ReconTally()
    for idx in batches_of(len(data), batch_size):
        rows = slice(idx[0], idx[-1] + 1)
        with stages("encode"):
            x = data.batch(idx, device)
            s_mean, _, d_mean, _ = model.encode(x)
        y, truth = torch.from_numpy(data.labels[idx]).to(device), data.labels[idx, 1:]
        waiting = []  # (tally, static-kept samples) the oracle has not read yet
        for tally, (s_draw, d_draw) in zip(tallies, draws):
            with stages("decode"), autocast(device, amp_dtype):
                x_action = model.decode(s_draw[rows], d_mean)                # motion kept, appearance drawn
                x_static = model.decode(s_mean, d_draw[rows])                # appearance kept, motion drawn
            judge_samples(judges, x_action, x_static, y, tally, stages, device, amp_dtype)
            if oracle is not None:
                waiting.append((tally, x_static))
                if len(waiting) == ORACLE_GROUP:
                    oracle_read(oracle, waiting, truth, stages)
            if stages.bar is not None:
                stages.bar.update(len(idx))
        if oracle is not None:
            with stages("decode"), autocast(device, amp_dtype):
                waiting.append((recon, model.decode(s_mean, d_mean)))       # reconstructions: the realism ceiling
            oracle_read(oracle, waiting, truth, stages)
    return tallies, (float(recon.real / len(data)) if oracle is not None else None)


@torch.no_grad()
def real_scores(judges, data, device, oracle=None, stages=None):
    """The real sequences read through the same protocol in place of both kinds of sample: the
    ceiling of every figure. Nothing is drawn, so one pass is every repeat. Returns a Tally."""
    stages = stages or Stages()
    tally = Tally(judges, data.x.shape[1])
    for idx in batches_of(len(data)):
        with stages("load"):
            x = data.batch(idx, device)
        y, truth = torch.from_numpy(data.labels[idx]).to(device), data.labels[idx, 1:]
        judge_samples(judges, x, x, y, tally, stages, device, None)
        if oracle is not None:
            oracle_read(oracle, [(tally, x)], truth, stages)
        if stages.bar is not None:
            stages.bar.update(len(idx))
    return tally


def evaluate(model, judges, data, device, repeats=5, seed=0, oracle=None, progress=True, stages=None, amp_dtype=None):
    """Every figure over `repeats` fresh draws: {figure: {"mean", "std", "judges", "spread"}}.

    mean and std are over repeats of the judges' mean; "judges" holds each judge's mean over
    repeats and "spread" their max - min. Oracle figures have mean and std only;
    oracle_real_frames_by_step has a list of each (one per step). model None scores the real
    sequences themselves (real_scores: one pass, std 0). The bar counts sequences read, over
    every repeat, so its ETA is the whole run's; pass `stages` (a Stages) to get the time of each
    stage back; amp_dtype (torch.bfloat16, or None: fp32) is the autocast of the decoder and the
    judges (swap_scores).
    """
    seed_everything(seed)
    passes = 1 if model is None else repeats
    bar = tqdm(total=passes * len(data), desc=f"swaps ({repeats} repeat{'s' * (repeats > 1)})", unit="seq",
               disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True)
    stages = stages or Stages()
    stages.bar = None if bar.disable else bar
    try:
        if model is None:
            tallies, recon = [real_scores(judges, data, device, oracle, stages)], None
        else:
            tallies, recon = swap_scores(model, judges, data, device, oracle, repeats, stages=stages,
                                         amp_dtype=amp_dtype)
    finally:
        bar.close()
        stages.bar = None
    results = summarise(tallies, len(data), judges, oracle is not None, real=model is None)
    if recon is not None:
        results["oracle_real_frames_recon"] = {"mean": recon, "std": 0.0}
    return results


def summarise(tallies, n, judges, with_oracle, real=False):
    """The figures of every repeat's tally as evaluate returns them; real sequences have no leakage figures."""
    runs = [t.judge_scores(n) for t in tallies]
    results = {}
    for k in runs[0][next(iter(judges))]:
        if real and k.endswith("_kept"):  # leakage needs codes to leak through; real sequences have none
            continue
        per_judge = {name: float(np.mean([r[name][k] for r in runs])) for name in judges}
        per_repeat = [np.mean([r[name][k] for name in judges]) for r in runs]
        results[k] = {"mean": float(np.mean(per_repeat)), "std": float(np.std(per_repeat)), "judges": per_judge,
                      "spread": max(per_judge.values()) - min(per_judge.values())}
    if with_oracle:
        oracle_runs = [t.oracle_scores(n) for t in tallies]
        for k in oracle_runs[0]:
            values = np.array([r[k] for r in oracle_runs])
            mean, std = values.mean(0), values.std(0)
            results[k] = {"mean": mean.tolist(), "std": std.tolist()} if values.ndim > 1 else {"mean": float(mean),
                                                                                               "std": float(std)}
    return results


def flagged(figure, result):
    """True if the judges disagree on this figure by more than the flag threshold."""
    limit = FLAG["info"] if figure in INFO_FIGURES else FLAG["accuracy"]
    return result.get("spread", 0.0) > limit


def format_table(results):
    """The figures as a plain-text table: mean over judges, std over repeats, the judges' spread and
    range, what chance would score, and a flag where the judges disagree."""
    chance = {"action": 1 / 9, "action|static_kept": 1 / 9, **{a: 1 / 6 for a in ATTRIBUTES},
              **{f"{p}{kept}": 1 / 3 for p in ACTION_PARTS for kept in ("", "|static_kept")},
              **{f"{a}|action_kept": 1 / 6 for a in ATTRIBUTES}, "IS": 1.0, "H(y|x)": math.log(9), "H(y)": 0.0,
              **{k: 1 / 6 for k in ORACLE_FACTORS},
              **{f"{k}_from_step_{FIRST_UNBLENDED_STEP + 1}": 1 / 6 for k in ORACLE_FACTORS}}
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
        lines.append(f"{k:<32}{fmt(v['mean']):>10}{fmt(v['std']):>9}{spread:>9}{judges:>20}"
                     f"{fmt(chance.get(k, 0.0)):>9}{flag}")
    return "\n".join(lines)


def markdown_rows(reports):
    """README results rows from swaps JSON reports: mean (std over repeats) [judges' spread], oracle beside."""
    cols = ["action", *ATTRIBUTES, *ORACLE_FACTORS, "IS", "H(y|x)", "action|static_kept", "oracle_real_frames",
            f"oracle_real_frames_from_step_{FIRST_UNBLENDED_STEP + 1}"]
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


def compare_table(base, other, spread):
    """Two runs' figures side by side (each a swaps JSON report's results): base, other, their
    difference, the std over repeats of `spread` (a run of several repeats), and the difference
    in units of that std; the last line counts the figures further apart than one std."""
    lines = [f"{'figure':<34}{'base':>10}{'other':>10}{'other-base':>12}{'std':>10}{'|diff|/std':>12}"]
    beyond = []
    for k, v in base.items():
        if isinstance(v["mean"], list) or k not in other:
            continue
        diff, std = other[k]["mean"] - v["mean"], spread.get(k, {}).get("std", 0.0)
        ratio = abs(diff) / std if std > 0 else (0.0 if diff == 0 else math.inf)
        if ratio > 1:
            beyond.append(k)
        lines.append(f"{k:<34}{v['mean']:>10.4f}{other[k]['mean']:>10.4f}{diff:>12.4f}{std:>10.4f}{ratio:>12.2f}")
    lines.append(f"{len(beyond)} figure(s) further apart than one std over repeats"
                 + (f": {', '.join(beyond)}" if beyond else ""))
    return "\n".join(lines)

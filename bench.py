"""Benchmarks: an ablation of the training step (one change per row), evaluation throughput,
data building and loading, peak memory. Prints a table and writes JSON.

    python bench.py                          # everything, on this machine
    python bench.py --presets cpu --steps 5  # a quicker look
    python bench.py --presets paper --profile  # also launches, host and GPU time per step

Each row of the ablation adds one change to the row above it, so each speed-up is its own:
plain (fp32, NCHW convolutions, the negative bank built under autograd and then detached,
every loss term read back each step), +bf16 (autocast; on a CPU the precision train.py would
pick, fp32 without AMX tiles), +channels-last, +no-grad-bank, +no-read-back (the terms read
back every 20 steps, as train.py does on a GPU; on a CPU it reads every step, which costs
nothing there), +fused-prior (model.SPYL.fused_prior), +graph (the whole step as a CUDA graph,
step.py; CUDA only), and +compile (torch.compile on top of +fused-prior instead of the graph).
The steps are step.TrainStep, the code train.py runs, timed as it runs them: no sync per step.
Each row runs in a fresh process, so its peak memory is its own.
"""
import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import fields

import numpy as np
import torch

import presets
from model import SPYL, SPYLConfig
from step import TrainStep, make_optimizer
from utils import (ArgumentParser, SPYLError, atomic_write, between, one_of, peak_memory_mib, pick_device,
                   resolve_precision, run_main)

# The ablation's rows in order, each the row above plus one change; +compile, on request, is
# +fused-prior with torch.compile in place of the graph.
CHANGES = (("+bf16", "bf16"), ("+channels-last", "channels_last"), ("+no-grad-bank", "no_grad_bank"),
           ("+no-read-back", "no_read_back"), ("+fused-prior", "fused_prior"), ("+graph", "graph"))
ABLATION = {"plain": frozenset()}  # row -> the changes it turns on
for _row, _change in CHANGES:
    ABLATION[_row] = ABLATION[list(ABLATION)[-1]] | {_change}
DEFAULT_ROWS = tuple(ABLATION)
ABLATION["+compile"] = ABLATION["+fused-prior"] | {"compile"}
SPRITES_TRAIN = 9000  # sequences in an epoch of Sprites: the s/epoch column
READ_BACK_EVERY = presets.TrainConfig.log_every  # how often train.py reads the terms back on a GPU
# names of the runtime calls that launch work on a GPU, as the profiler records them
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx", "cudaGraphLaunch",
            "cudaMemcpyAsync", "cudaMemsetAsync")


def preset_configs(preset):
    """(SPYLConfig, batch size) of a train.py preset."""
    values = {**{f.name: f.default for f in fields(presets.TrainConfig)}, **presets.PRESETS[preset]}
    mcfg = SPYLConfig(**{k: v for k, v in values.items() if k in {f.name for f in fields(SPYLConfig)}})
    return mcfg, values["batch_size"]


def build_step(preset, row, device):
    """(TrainStep, model config, batch size, autocast dtype) for one row of the ablation."""
    on = ABLATION[row]
    torch.manual_seed(0)
    mcfg, batch = preset_configs(preset)
    model = SPYL(mcfg).to(device)
    model.plain_bank = "no_grad_bank" not in on
    model.fused_prior = "fused_prior" in on
    if "channels_last" in on:
        model = model.to(memory_format=torch.channels_last)
    amp = None
    if "bf16" in on:
        amp = torch.bfloat16 if device.type == "cuda" else resolve_precision("auto", device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    opt = make_optimizer(model, 2e-3, cuda_graph="graph" in on)
    forward = torch.compile(model) if "compile" in on else model
    return TrainStep(forward, opt, device, amp, cuda_graph="graph" in on), mcfg, batch, amp


def batches_for(mcfg, batch, n, device, data=None):
    """n training batches: real Sprites (with data) or uniform noise of the same shape."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        if data is not None:
            out.append(data.batch(np.sort(rng.choice(len(data), batch, replace=False)), device))
        else:
            out.append(torch.rand(batch, mcfg.frames, *mcfg.step_shape, device=device))
    return out


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_phase(step, xs, contrastive, warmup, device, read_back):
    """Time len(xs) - warmup steps after `warmup` untimed ones, with no sync between steps.
    Returns {seq_per_s (from the median step), median_step_ms, wall_step_ms, host_issue_ms}:
    on a GPU a step's time is the interval between CUDA events recorded after each step (on the
    device, no host wait); host_issue_ms is how long the host took to hand a step over."""
    cuda = device.type == "cuda"
    for x in xs[:warmup]:
        step(x, contrastive).sum().item()
    _sync(device)
    marks, issue, pending = [], [], []
    t_start = time.perf_counter()
    for i, x in enumerate(xs[warmup:]):
        t0 = time.perf_counter()
        out = step(x, contrastive)
        issue.append(time.perf_counter() - t0)
        pending.append(out)
        if (i + 1) % read_back == 0:
            torch.stack(pending).cpu()   # what train.py does with its window of terms
            pending = []
        if cuda:
            marks.append(torch.cuda.Event(enable_timing=True))
            marks[-1].record()
        else:
            marks.append(time.perf_counter())
    _sync(device)
    wall = (time.perf_counter() - t_start) / len(marks)
    if cuda:
        steps = [a.elapsed_time(b) / 1e3 for a, b in zip(marks, marks[1:])]
    else:
        steps = list(np.diff([t_start, *marks]))
    median = float(np.median(steps)) if steps else wall
    batch = xs[0].shape[0]
    return {"seq_per_s": batch / median, "median_step_ms": 1e3 * median, "wall_step_ms": 1e3 * wall,
            "host_issue_ms": 1e3 * float(np.median(issue))}


def profile_phase(step, xs, contrastive, device, n=3):
    """Per step, over n profiled steps: kernel launches (on a CPU, the ATen kernels run, the
    nearest count) and GPU time (the summed time of its kernels; None on a CPU)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    with profile(activities=activities) as prof:
        for x in xs[:n]:
            step(x, contrastive)
        _sync(device)
    events = prof.events()
    if device.type == "cuda":
        launches = sum(1 for e in events if e.name in LAUNCHES)
        gpu_us = sum(e.time_range.end - e.time_range.start for e in events if getattr(e, "device_type",
                                                                                      None) == DeviceType.CUDA)
        return {"launches": launches / n, "gpu_ms": gpu_us / 1e3 / n}
    aten = lambda e: e.name.startswith("aten::")
    leaves = sum(1 for e in events if aten(e) and not any(aten(c) for c in e.cpu_children))
    return {"launches": leaves / n, "gpu_ms": None}


def time_steps(preset, row, contrastive, steps, warmup, device, data=None, profile=False):
    """One phase of one row: time_phase's figures (+ profile_phase's with profile)."""
    step, mcfg, batch, amp = build_step(preset, row, device)
    xs = batches_for(mcfg, batch, warmup + steps, device, data)
    read_back = 1 if "no_read_back" not in ABLATION[row] else (READ_BACK_EVERY if device.type == "cuda" else 1)
    out = {**time_phase(step, xs, contrastive, warmup, device, read_back), "precision": "bf16" if amp else "fp32"}
    if profile:
        out.update(profile_phase(step, xs, contrastive, device))
    return out


def run_one(args):
    """Child process: one preset x row, both phases; prints a JSON line."""
    device = pick_device(args.device)
    data = None
    if args.data_dir:
        from dataloader import load_sprites
        data = load_sprites(args.data_dir, None, download=False)[0]
    out = {"preset": args.one[0], "mode": args.one[1]}
    for phase, contrastive in (("warm-up", False), ("contrastive", True)):
        out[phase] = time_steps(args.one[0], args.one[1], contrastive, args.steps, args.warmup_steps, device, data,
                                args.profile)
    out["peak_mib"] = peak_memory_mib(device)
    out["host_rss_mib"] = peak_memory_mib(torch.device("cpu"))  # host RAM counts on a GPU machine too
    print(json.dumps(out))


def bench_eval(device, data_dir="", n=504, repeats=2, preset="paper"):
    """Sequences per second of the swap evaluation (`repeats` draws of n sequences, as
    evaluation.evaluate runs them), judged by an ensemble shaped like the shipped one
    (untrained: the cost is the same), with the pixel oracle on real Sprites (with data_dir);
    model of a train.py preset (the shipped one is paper-size). Returns {"eval_seq_per_s", "judges",
    "eval_stage_seconds", "oracle_seq_per_s"}."""
    from dataloader import SequenceData, load_sprites
    from judging import DEFAULT_MEMBERS, Judge, JudgeConfig
    from oracle import PixelOracle
    from evaluation import Stages, evaluation_layout, swap_scores
    mcfg, _ = preset_configs(preset)
    model = evaluation_layout(SPYL(mcfg).to(device).eval())
    judges = {f"{a}-{s}": Judge(JudgeConfig(arch=a, seed=s)).to(device).eval() for a, s in DEFAULT_MEMBERS}
    if data_dir:
        train_set, test_set = load_sprites(data_dir, None, download=False)
        data, oracle = SequenceData(test_set.x[:n], test_set.labels[:n], "bench"), PixelOracle(train_set, test_set)
    else:
        rng = np.random.default_rng(0)
        data = SequenceData(rng.integers(0, 256, (n, 8, 64, 64, 3), dtype=np.uint8), np.zeros((n, 5), np.int64),
                            "bench")
        oracle = None
    swap_scores(model, judges, SequenceData(data.x[:63], data.labels[:63], "bench"), device)  # warm-up
    stages = Stages()
    t0 = time.perf_counter()
    swap_scores(model, judges, data, device, oracle, repeats=repeats, stages=stages)
    out = {"eval_seq_per_s": n * repeats / (time.perf_counter() - t0), "judges": len(judges), "eval_repeats": repeats,
           "eval_stage_seconds": {k: round(v, 2) for k, v in stages.seconds.items()}}
    if oracle is not None:
        x = data.batch(np.arange(n), device)
        t0 = time.perf_counter()
        oracle.read(x, data.labels[:, 1:])
        out["oracle_seq_per_s"] = n / (time.perf_counter() - t0)
    return out


def bench_data(sheets):
    """Seconds to compose Sprites from the parts into a fresh folder, and to load the result."""
    from dataloader import load_sprites
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        load_sprites(folder, sheets)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        train_set, test_set = load_sprites(folder, None, download=False)
        load = time.perf_counter() - t0
    return build, load


def print_table(rows):
    """The ablation as a table: each row against plain and against the row above it."""
    print(f"\n{'preset':<8}{'row':<16}{'phase':<13}{'dtype':>6}{'seq/s':>9}{'vs plain':>9}{'vs above':>9}{'s/epoch':>9}"
          f"{'ms/step':>9}{'host ms':>9}{'launches':>9}{'GPU ms':>8}{'peak MiB':>9}")
    for phase in ("warm-up", "contrastive"):
        for preset in dict.fromkeys(r["preset"] for r in rows):
            mine = [r for r in rows if r["preset"] == preset]
            plain = next((r for r in mine if r["mode"] == "plain"), None)
            for i, r in enumerate(mine):
                m = r[phase]
                vs_plain = f"{m['seq_per_s'] / plain[phase]['seq_per_s']:.2f}x" if plain else "-"
                vs_above = f"{m['seq_per_s'] / mine[i - 1][phase]['seq_per_s']:.2f}x" if i else "-"
                launches = f"{m['launches']:.0f}" if "launches" in m else "-"
                gpu = f"{m['gpu_ms']:.1f}" if m.get("gpu_ms") is not None else "-"
                print(f"{preset:<8}{r['mode']:<16}{phase:<13}{m['precision']:>6}{m['seq_per_s']:>9.1f}"
                      f"{vs_plain:>9}{vs_above:>9}"
                      f"{SPRITES_TRAIN / m['seq_per_s']:>9.1f}{m['median_step_ms']:>9.1f}{m['host_issue_ms']:>9.1f}"
                      f"{launches:>9}{gpu:>8}{r['peak_mib']:>9.0f}")


def main(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="cpu,paper")
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                   help=f"rows of the ablation, each one change on the row above: {', '.join(ABLATION)} (+graph "
                        "needs CUDA; left out elsewhere)")
    p.add_argument("--steps", type=between(1, 10**4), default=20,
                   help="timed steps per phase; the figures are their medians")
    p.add_argument("--warmup-steps", type=between(1, 100), default=3,
                   help="untimed steps first (CUDA graphs are captured in these)")
    p.add_argument("--profile", action="store_true",
                   help="also profile 3 steps per phase: launches and GPU time per step")
    p.add_argument("--device", default="auto")
    p.add_argument("--sheets", default="", help="sprite parts folder: also time building and loading Sprites")
    p.add_argument("--data-dir", default="",
                   help="folder with composed Sprites: train on real batches (and count their memory)")
    p.add_argument("--eval-sequences", type=between(1, 2664), default=504,
                   help="test sequences the swap evaluation is timed on")
    p.add_argument("--eval-preset", type=one_of(*presets.PRESETS), default="paper",
                   help="the model size the swap evaluation is timed with")
    p.add_argument("--out", default="bench/results.json")
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        return run_one(args)
    device = pick_device(args.device)
    asked = args.rows.split(",")
    unknown = [r for r in asked if r not in ABLATION] + [p for p in args.presets.split(",") if p not in presets.PRESETS]
    if unknown:
        raise SPYLError(f"unknown row or preset {unknown}; rows: {', '.join(ABLATION)}; presets: "
                        f"{', '.join(presets.PRESETS)}")
    if device.type != "cuda" and "+graph" in asked:
        if args.rows != ",".join(DEFAULT_ROWS):
            raise SPYLError(f"row +graph needs a CUDA device, and this machine runs on {device}; leave it out")
        asked.remove("+graph")
        print(f"note: +graph left out: it needs a CUDA device (this run: {device})", file=sys.stderr)
    rows = []
    for preset in args.presets.split(","):
        for row in asked:
            cmd = [sys.executable, __file__, "--one", preset, row, "--steps", str(args.steps), "--warmup-steps",
                   str(args.warmup_steps), "--device", args.device, *(["--profile"] if args.profile else []),
                   *(["--data-dir", args.data_dir] if args.data_dir else [])]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                raise SPYLError(f"row {row} of preset {preset} failed: "
                                f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"  {preset:<6} {row:<15} warm-up {rows[-1]['warm-up']['seq_per_s']:8.1f} seq/s   contrastive "
                  f"{rows[-1]['contrastive']['seq_per_s']:8.1f} seq/s   peak {rows[-1]['peak_mib']:7.0f} MiB",
                  file=sys.stderr)
    report = {"device": str(device), "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                              else platform.processor() or platform.machine()),
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "steps": args.steps, "warmup_steps": args.warmup_steps, "train_steps": rows,
              **bench_eval(device, args.data_dir, n=args.eval_sequences, preset=args.eval_preset)}
    if args.sheets:
        report["sprites_build_s"], report["sprites_load_s"] = bench_data(args.sheets)
    print_table(rows)
    print(f"\nswap evaluation ({args.eval_preset}-preset model, {report['eval_repeats']} repeats): "
          f"{report['eval_seq_per_s']:.1f} sequences/s per repeat, each read by {report['judges']} judges"
          + (f"; pixel oracle: {report['oracle_seq_per_s']:.0f} sequences/s" if "oracle_seq_per_s" in report else ""))
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(report["eval_stage_seconds"].items(),
                                                               key=lambda kv: -kv[1])))
    if args.sheets:
        print(f"Sprites from the parts: built in {report['sprites_build_s']:.1f} s, loaded in "
              f"{report['sprites_load_s']:.2f} s")
    atomic_write(args.out, lambda f: json.dump(report, f, indent=1), mode="w")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)

"""Benchmarks: training-step throughput (fast vs plain), evaluation throughput, data
building and loading, peak memory. Prints a table and writes JSON.

    python bench.py                          # everything, on this machine
    python bench.py --presets cpu --steps 5  # a quicker look

fast is what train.py does: channels-last convolutions, bf16 autocast on CUDA and
on CPUs with AMX tiles (see train.resolve_precision), the negative bank without
an autograd graph, no host syncs in the step. plain is the straightforward
version of the same maths: fp32, NCHW, the bank built under autograd and then
detached, every loss term read back with .item() each step; bf16, compile and
bf16+compile are fast plus bf16 autocast and/or torch.compile, to show whether they
pay. Each configuration runs in a fresh process, so its peak memory is its own.
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

import train
from model import SPYL, SPYLConfig
from utils import ArgumentParser, SPYLError, between, one_of, atomic_write, peak_memory_mib, pick_device, run_main


MODES = ("plain", "fast", "bf16", "compile", "bf16+compile")


def preset_configs(preset):
    """(SPYLConfig, batch size) of a train.py preset."""
    values = {**{f.name: f.default for f in fields(train.TrainConfig)}, **train.PRESETS[preset]}
    mcfg = SPYLConfig(**{k: v for k, v in values.items() if k in {f.name for f in fields(SPYLConfig)}})
    return mcfg, values["batch_size"]


def time_steps(preset, mode, contrastive, steps, device, data=None):
    """Median sequences per second of training steps after one warm-up step."""
    torch.manual_seed(0)
    mcfg, batch = preset_configs(preset)
    plain = mode == "plain"
    model = SPYL(mcfg).to(device)
    model.plain_bank = plain
    if not plain:
        model = model.to(memory_format=torch.channels_last)
    amp = None if plain else train.resolve_precision("bf16" if "bf16" in mode else "auto", device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    step = torch.compile(model) if "compile" in mode else model
    rng = np.random.default_rng(0)
    times = []
    for i in range(steps + 1):
        idx = np.sort(rng.choice(len(data), batch, replace=False)) if data is not None else None
        x = data.batch(idx, device) if data is not None else torch.rand(batch, mcfg.frames, 3, 64, 64, device=device)
        if plain:
            x = x.contiguous()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            terms = step(x, contrastive=contrastive)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        if plain:
            _ = {k: v.item() for k, v in terms.items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times[1:]))


def run_one(args):
    """Child process: one preset x mode, both phases; prints a JSON line."""
    device = pick_device(args.device)
    data = None
    if args.data_dir:
        from dataloader import load_sprites
        data = load_sprites(args.data_dir, None, download=False)[0]
    out = {"preset": args.one[0], "mode": args.one[1]}
    for phase, contrastive in (("warm-up", False), ("contrastive", True)):
        out[phase] = time_steps(args.one[0], args.one[1], contrastive, args.steps, device, data)
    out["peak_mib"] = peak_memory_mib(device)
    out["host_rss_mib"] = peak_memory_mib(torch.device("cpu"))  # host RAM counts on a GPU machine too
    print(json.dumps(out))


def bench_eval(device, data_dir="", n=504, repeats=2, preset="paper"):
    """Sequences per second of the swap evaluation (`repeats` draws of n sequences, as
    swaps_experiments.evaluate runs them), judged by an ensemble shaped like the shipped one
    (untrained: the cost is the same), with the pixel oracle on real Sprites (with data_dir);
    model of a train.py preset (the shipped one is paper-size). Returns {"eval_seq_per_s", "judges", "eval_stage_seconds", "oracle_seq_per_s"}."""
    from dataloader import SequenceData, load_sprites
    from judge import DEFAULT_MEMBERS, Judge, JudgeConfig
    from oracle import PixelOracle
    from swaps_experiments import Stages, evaluation_layout, swap_scores
    mcfg, _ = preset_configs(preset)
    model = evaluation_layout(SPYL(mcfg).to(device).eval())
    judges = {f"{a}-{s}": Judge(JudgeConfig(arch=a, seed=s)).to(device).eval() for a, s in DEFAULT_MEMBERS}
    if data_dir:
        train_set, test_set = load_sprites(data_dir, None, download=False)
        data, oracle = SequenceData(test_set.x[:n], test_set.labels[:n], "bench"), PixelOracle(train_set, test_set)
    else:
        rng = np.random.default_rng(0)
        data = SequenceData(rng.integers(0, 256, (n, 8, 64, 64, 3), dtype=np.uint8), np.zeros((n, 5), np.int64), "bench")
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


def main(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="cpu,paper")
    p.add_argument("--steps", type=between(1, 10**4), default=3, help="timed steps per measurement (after one warm-up step)")
    p.add_argument("--device", default="auto")
    p.add_argument("--sheets", default="", help="sprite parts folder: also time building and loading Sprites")
    p.add_argument("--data-dir", default="", help="folder with composed Sprites: train on real batches (and count their memory)")
    p.add_argument("--modes", default="plain,fast", help="plain, fast, and the variants bf16 (fast + bf16 autocast), compile (fast + torch.compile), bf16+compile")
    p.add_argument("--eval-sequences", type=between(1, 2664), default=504, help="test sequences the swap evaluation is timed on")
    p.add_argument("--eval-preset", type=one_of(*train.PRESETS), default="paper", help="the model size the swap evaluation is timed with")
    p.add_argument("--out", default="bench/results.json")
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        return run_one(args)
    unknown = [m for m in args.modes.split(",") if m not in MODES] + [p for p in args.presets.split(",") if p not in train.PRESETS]
    if unknown:
        raise SPYLError(f"unknown mode or preset {unknown}; modes: {', '.join(MODES)}; presets: {', '.join(train.PRESETS)}")
    device = pick_device(args.device)
    rows = []
    for preset in args.presets.split(","):
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--one", preset, mode, "--steps", str(args.steps), "--device", args.device]
            if args.data_dir:
                cmd += ["--data-dir", args.data_dir]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"  {preset:<6} {mode:<12} warm-up {rows[-1]['warm-up']:8.1f} seq/s   contrastive {rows[-1]['contrastive']:8.1f} seq/s"
                  f"   peak {rows[-1]['peak_mib']:7.0f} MiB   host RSS {rows[-1]['host_rss_mib']:7.0f} MiB", file=sys.stderr)
    report = {"device": str(device), "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "steps": args.steps, "train_steps": rows, **bench_eval(device, args.data_dir, n=args.eval_sequences, preset=args.eval_preset)}
    if args.sheets:
        report["sprites_build_s"], report["sprites_load_s"] = bench_data(args.sheets)
    print(f"\n{'preset':<8}{'mode':<14}{'phase':<13}{'seq/s':>8}{'vs plain':>10}{'s/epoch':>9}{'peak MiB':>10}{'host MiB':>10}")
    for r in rows:
        plain = next((q for q in rows if q["preset"] == r["preset"] and q["mode"] == "plain"), None)
        for phase in ("warm-up", "contrastive"):
            ratio = f"{r[phase] / plain[phase]:.2f}x" if plain else "-"
            print(f"{r['preset']:<8}{r['mode']:<14}{phase:<13}{r[phase]:>8.1f}{ratio:>10}{9000 / r[phase]:>9.1f}{r['peak_mib']:>10.0f}{r['host_rss_mib']:>10.0f}")
    print(f"\nswap evaluation ({args.eval_preset}-preset model, {report['eval_repeats']} repeats): {report['eval_seq_per_s']:.1f} sequences/s per repeat, "
          f"each read by {report['judges']} judges" + (f"; pixel oracle: {report['oracle_seq_per_s']:.0f} sequences/s" if "oracle_seq_per_s" in report else ""))
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(report["eval_stage_seconds"].items(), key=lambda kv: -kv[1])))
    if args.sheets:
        print(f"Sprites from the parts: built in {report['sprites_build_s']:.1f} s, loaded in {report['sprites_load_s']:.2f} s")
    atomic_write(args.out, lambda f: json.dump(report, f, indent=1), mode="w")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)

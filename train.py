"""Train SPYL. Reads top to bottom: config, data, model, loop, evaluation, checkpoint.

    python train.py                      # --preset auto: the paper's settings on a CUDA GPU, the cpu preset elsewhere
    python train.py --preset paper       # the paper's settings anywhere (sized for a GPU)
    python train.py --resume             # continue the run in --run-dir exactly
    python train.py --method dbse        # a method SPYL is compared with (methods/) on the same backbone
    torchrun --nproc_per_node=N train.py # DistributedDataParallel, same flags

Every field of SPYLConfig and TrainConfig is a flag (s_dim -> --s-dim).
"""
import argparse
import json
import os
import signal
import sys
import time
from dataclasses import asdict, fields

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from dataloader import ATTRIBUTES, HAS_VALIDATION, batch_indices, data_shape, load_dataset, prefetch
from evaluation import evaluate
from judging import judge_paths, load_judges
from methods import METHODS, TITLES, build, defaults
from model import CHECKPOINT_VERSION, CONFIG_RULES, SPYL, SPYLConfig
from presets import PRESETS, TRAIN_RULES, TrainConfig, auto_preset
from prior_fitting import fit_to_training_set, plot_fits
from step import TrainStep, make_optimizer
from utils import (ArgumentParser, SPYLError, atomic_torch_save, autocast, atomic_write, check_writable, figure,
                   load_checkpoint, peak_memory_mib, pick_device, resolve_precision, remove_stale_temporaries,
                   rng_state, run_main, save_figure, save_png, seed_everything, sequence_grid, set_rng_state)


ROOT = os.path.dirname(os.path.abspath(__file__))
# Fields that shape the weights: a model file given to --init-from must agree on them.
ARCHITECTURE_FIELDS = ("method", "frames", "channels", "image_size", "frame_net", "x_dim", "conv_width", "s_dim",
                       "d_dim", "g_dim", "hidden")
# Fields a resumed run may change; anything else must match the checkpoint.
RESUMABLE = {"epochs", "device", "threads", "out", "save_every", "eval_every", "judge", "log_every", "resume", "sheets",
             "data_dir", "data_root", "cuda_graph", "fused_prior", "fit_prior"}


def parse_args(argv=None):
    """(SPYLConfig, TrainConfig, the flags given, why the preset was chosen) from --preset and one
    flag per config field; the TrainConfig holds the preset resolved (auto -> its choice)."""
    p = ArgumentParser(description=__doc__.splitlines()[0])
    for cls, rules in ((SPYLConfig, CONFIG_RULES), (TrainConfig, TRAIN_RULES)):
        group = p.add_argument_group(cls.__name__)
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            if f.type is bool or f.type == "bool":
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                   help=f"default {f.default}")
            else:
                rule = rules.get(f.name)
                allowed = f"; {rule.describe()}" if rule else ""
                group.add_argument(flag, type=type(f.default), default=argparse.SUPPRESS,
                                   help=f"default {f.default}{allowed}")
    p.add_argument("--dsvae", action="store_true", default=argparse.SUPPRESS, help="the same as --method dsvae")
    args = vars(p.parse_args(argv))
    if args.pop("dsvae", False):
        if args.setdefault("method", "dsvae") != "dsvae":
            raise SPYLError(f"--dsvae means --method dsvae, and --method {args['method']} was given too; pass one")
    preset = args.pop("preset", "auto")
    if TRAIN_RULES["preset"].check(preset):
        raise SPYLError(f"--preset {TRAIN_RULES['preset'].check(preset)}")
    preset, why = (auto_preset(args.get("dataset", "auto"), args.get("device", "auto")) if preset == "auto"
                   else (preset, "asked for"))
    method = args.get("method", PRESETS[preset].get("method", "spyl"))
    if CONFIG_RULES["method"].check(method):
        raise SPYLError(f"--method {CONFIG_RULES['method'].check(method)}")
    # the method's own values of shared fields sit between the preset and the flags given
    values = {**PRESETS[preset], **defaults(method), **args, "preset": preset}
    split = lambda cls: {k: v for k, v in values.items() if k in {f.name for f in fields(cls)}}
    mcfg, tcfg = SPYLConfig(**split(SPYLConfig)), TrainConfig(**split(TrainConfig))
    check_combination(mcfg, tcfg)
    return mcfg, tcfg, set(args), why


def check_combination(mcfg, tcfg):
    """Settings that are each valid but do not go together: an error, or a note where a run may
    mean it (a warm-up as long as the run trains a DSVAE-like model)."""
    bank = mcfg.bank_factor * tcfg.batch_size
    if mcfg.method == "spyl" and mcfg.n_negatives > bank:
        raise SPYLError(f"--n-negatives {mcfg.n_negatives} is more than the negative bank holds (--bank-factor "
                        f"{mcfg.bank_factor} x --batch-size {tcfg.batch_size} = {bank}); lower --n-negatives or "
                        "raise --bank-factor")
    frames, step_shape = data_shape(tcfg.dataset)
    if mcfg.frames != frames or mcfg.step_shape != step_shape:
        ours = f"{mcfg.frames} steps of {' x '.join(map(str, mcfg.step_shape))} ({mcfg.frame_net})"
        raise SPYLError(f"the model is set for {ours}, but {tcfg.dataset} sequences are {frames} steps of "
                        f"{' x '.join(map(str, step_shape))}; drop "
                        "--frames/--x-dim/--image-size/--channels/--frame-net, or pick the data set's preset")
    if tcfg.cuda_graph and tcfg.compile:
        raise SPYLError("--cuda-graph and --compile do not go together (torch.compile makes its own graphs); pass "
                        "one of them")
    if METHODS[mcfg.method].warms_up and tcfg.warmup_epochs >= tcfg.epochs:
        print(f"note: --warmup-epochs {tcfg.warmup_epochs} is not below --epochs {tcfg.epochs}, so the contrastive "
              f"terms never switch on: this run trains a DSVAE-like model", file=sys.stderr)


class Stop:
    """First Ctrl-C: finish the step, save, exit. Second: exit at once."""

    def __init__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self.handler)

    def close(self):
        signal.signal(signal.SIGINT, self.previous)

    def handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: saving a checkpoint after this step (Ctrl-C again to quit at once)", file=sys.stderr)


def plot_curves(log, path):
    """PNG of every logged loss term (train) and the validation loss against epoch."""
    keys = [k for k in log[-1]["train"] if k != "loss"]
    fig, axes = figure(1, len(keys) + 1, figsize=(3 * (len(keys) + 1), 2.8))
    epochs = [r["epoch"] for r in log]
    axes[0].plot(epochs, [r["train"]["loss"] for r in log], label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in log], label="val")
    axes[0].set_title("loss"), axes[0].legend()
    for ax, k in zip(axes[1:], keys):
        ax.plot(epochs, [r["train"].get(k, np.nan) for r in log])
        ax.set_title(k)
    for ax in axes:
        ax.set_xlabel("epoch")
    save_figure(fig, path)


def plot_vector_recon(x, x_hat, path):
    """Vector sequences (B x T x D) above their reconstructions, as heat maps of steps x features;
    values not observed (NaN) are left blank."""
    fig, axes = figure(2, len(x), figsize=(2.6 * len(x), 4.4), squeeze=False)
    for i in range(len(x)):
        for row, (data, title) in enumerate(((x[i], "sequence"), (x_hat[i], "reconstruction"))):
            axes[row, i].imshow(data.detach().float().cpu().numpy().T, aspect="auto", cmap="coolwarm", vmin=-2.5,
                                vmax=2.5)
            axes[row, i].set_title(f"{title} {i + 1}", fontsize=8)
            axes[row, i].set_xlabel("step", fontsize=7)
    save_figure(fig, path)


# What the hints quote is read from the files that measured it, never restated here: a
# contrastive epoch's cost in warm-up epochs from the cpu preset's released run log, and the
# paper preset's speed on a 2-core CPU from bench.py's results.
CPU_PRESET_LOG = os.path.join(ROOT, "weights", "runs", "cpu-preset", "log.jsonl")
PAPER_ON_CPU = os.path.join(ROOT, "bench", "results_cpu_paper_variants.json")


def contrastive_cost(log_path=CPU_PRESET_LOG):
    """How many warm-up epochs' time one contrastive epoch took in a run's log (mean over each
    phase's epochs): the bar's guess of what is left until this run has timed one; 1.0 (no
    guess) if the log is missing or has no epoch of either phase."""
    try:
        with open(log_path) as f:
            rows = [json.loads(line) for line in f]
    except (OSError, ValueError):
        return 1.0
    phases = {True: [], False: []}
    for r in rows:
        phases["nce_s" in r["train"]].append(r["seconds"])
    return float(np.mean(phases[True]) / np.mean(phases[False])) if phases[True] and phases[False] else 1.0


CONTRASTIVE_COST = contrastive_cost()


def run_left(per_step, contrastive, steps_left, later, paces):
    """Seconds left in the run: this epoch's steps_left at the pace measured now (per_step), then
    the later epochs' steps (later: {contrastive: steps}) at the pace of their phase measured in an
    earlier epoch (paces: {contrastive: seconds per step}), else guessed with CONTRASTIVE_COST."""
    total = per_step * steps_left
    for phase, n in later.items():
        pace = per_step if phase == contrastive else paces.get(phase)
        if pace is None:
            pace = per_step * (CONTRASTIVE_COST if phase else 1 / CONTRASTIVE_COST)
        total += n * pace
    return total


def train_epoch(step, batches, first, n_batches, sums, contrastive, sync_every, bar, stop, later=None, paces=None,
                where=(0, "")):
    """Run the steps (a step.TrainStep) of one epoch from step `first`; batches yields (input, the
    input's rows of the training set) pairs.

    The loss terms of each step stay on the device and are read back once per window of
    sync_every steps (and at the first and last step), where they are checked for
    finiteness, added to `sums` and shown on the bar with the time per step and what is
    left of the run (run_left; later: the steps of the epochs after this one). Returns (sums,
    None), or (sums, step to resume from) when a Ctrl-C asks to stop inside the epoch.
    """
    window, t0, done = [], time.time(), 0
    for i_step, (x, index) in enumerate(batches, start=first):
        window.append(step(x, contrastive, index))
        if len(window) < sync_every and i_step not in (first, n_batches - 1):
            continue
        names = step.names[contrastive]
        stacked = torch.stack(window).float().cpu()          # steps x terms: one sync per window
        bad = ~torch.isfinite(stacked)
        if bad.any():
            i, j = bad.nonzero()[0].tolist()
            epoch, run_dir = where
            raise SPYLError(f"loss term {names[j]} became {stacked[i, j].item()} at epoch {epoch + 1}, step "
                            f"{i_step - len(window) + 2 + i}; the last good checkpoint in {run_dir} is kept (resume "
                            "with --resume, or lower --lr)")
        total = stacked.sum(0).double()
        sums = {k: (sums or {}).get(k, 0.0) + total[j].item() for j, k in enumerate(names)}
        done += len(window)
        per_step = (time.time() - t0) / done
        bar.update(len(window))
        bar.set_postfix({**{k: f"{v:.4g}" for k, v in zip(names, stacked[-1].tolist())},
                         "run left": format_duration(run_left(per_step, contrastive, n_batches - 1 - i_step,
                                                              later or {}, paces or {}))})
        window = []
        if stop is not None and stop.requested and i_step < n_batches - 1:
            return sums, i_step + 1
    return sums, None


def write_epoch(log, tcfg, x, recon, draw):
    """The epoch's line on stderr and log.jsonl in the run folder; with draw, also curves.png
    and recon.png (sequences x above their reconstructions)."""
    record, swap = log[-1], log[-1]["swap"]
    terms_txt = " ".join(f"{k} {v:.4g}" for k, v in record["train"].items())
    swap_txt = " | swap " + " ".join(f"{k} {swap[k]:.3f}" for k in ("action", *ATTRIBUTES)) if swap else ""
    print(f"epoch {record['epoch']}/{tcfg.epochs} | {terms_txt} | val {record['val_loss']:.4g}{swap_txt} | "
          f"{record['seconds']:.1f}s ({record['seq_per_s']} seq/s)", file=sys.stderr)
    atomic_write(os.path.join(tcfg.run_dir, "log.jsonl"),
                 lambda f: f.write("".join(json.dumps(r) + "\n" for r in log)), mode="w")
    if not draw:
        return
    plot_curves(log, os.path.join(tcfg.run_dir, "curves.png"))
    if x.dim() == 5:  # video frames
        rows = [r for pair in zip(x, recon) for r in pair]  # original, reconstruction, ...
        save_png(sequence_grid(rows), os.path.join(tcfg.run_dir, "recon.png"), scale=2)
    else:
        plot_vector_recon(x, recon, os.path.join(tcfg.run_dir, "recon.png"))


def format_duration(seconds):
    """3725 -> '1h02m', 95 -> '1m35s'."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def validate(model, val_x, judges, test, device, amp_dtype, contrastive, tcfg):
    """Validation loss, reconstructions of 4 validation sequences and, with judges, one swap
    evaluation (its own random draws; training's stream is restored). Returns (loss, recon, swap)."""
    model.eval()
    with torch.no_grad(), autocast(device, amp_dtype):
        chunks = val_x.split(tcfg.batch_size)  # batch-sized, so the negative bank stays batch-sized too
        val_loss = sum(model(c, contrastive=contrastive)["loss"].item() * len(c) for c in chunks) / len(val_x)
        recon = model.decode(*model.encode(val_x[:4])[::2])
    swap = None
    if judges:
        state = rng_state()
        scores = evaluate(model, judges, test, device, repeats=1, seed=tcfg.seed, progress=False, amp_dtype=amp_dtype)
        set_rng_state(state)
        swap = {k: round(v["mean"], 4) for k, v in scores.items()}
    model.train()
    return val_loss, recon, swap


def cpu_hint(preset, device, tcfg, n_train, bench_path=PAPER_ON_CPU):
    """One line for a user about to train the GPU-sized paper preset on a CPU, or None: what an
    epoch of n_train sequences took on 2 cores by bench.py (bench_path), or no figures without it."""
    if device.type != "cpu" or preset != "paper":
        return None
    try:
        with open(bench_path) as f:
            rows = [r for r in json.load(f)["train_steps"] if r["preset"] == "paper"]
        minutes = {phase: [n_train / r[phase] / 60 for r in rows] for phase in ("warm-up", "contrastive")}
        took = (f"on 2 CPU cores an epoch takes {min(minutes['warm-up']):.0f}-{max(minutes['warm-up']):.0f} min "
                "before the contrastive terms start and "
                f"{min(minutes['contrastive']):.0f}-{max(minutes['contrastive']):.0f} min after (bench.py, "
                f"{os.path.relpath(bench_path, ROOT)}), so {tcfg.epochs} epochs would take weeks")
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        took = f"on a CPU {tcfg.epochs} epochs would take weeks"
    return (f"note: the paper preset is sized for a GPU; {took}. `python train.py --preset cpu` trains a real model "
            f"on 2 cores in 1-2 hours; this run goes on as asked.")


def start_from(model, path, mcfg):
    """Load a model file's weights into a fresh run (fine-tuning, or a long schedule trained in
    legs); its architecture must be the one configured."""
    source = SPYL.from_checkpoint(load_checkpoint(path), path)
    if source.left_out:
        raise SPYLError(f"--init-from {path}: a released file, without {', '.join(source.left_out)} (weights only "
                        "training reads); start from its run's checkpoint.pt, or train afresh")
    theirs, ours = asdict(source.config), asdict(mcfg)
    differ = sorted(k for k in ARCHITECTURE_FIELDS if theirs[k] != ours[k])
    if differ:
        raise SPYLError(f"--init-from {path}: its architecture differs from this run's in {differ}; pass the same "
                        "values (or no preset)")
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError:  # FHVAE's table of training sequences: one row per sequence of the set it was trained on
        raise SPYLError(f"--init-from {path}: its weights do not fit this run's model (a {TITLES[mcfg.method]} "
                        f"trained on another data set?); start from a model of the same method and data") from None


def finish(model, train, tcfg, device):
    """After the last epoch: with --fit-prior, fit the prior alone to the trained model's
    posteriors (log in RUN_DIR/fit_prior.json) and write the result to --out, else RUN_DIR/model.pth;
    without it, write the model to --out if given. The checkpoint keeps the jointly trained prior."""
    out = tcfg.out or (os.path.join(tcfg.run_dir, "model.pth") if tcfg.fit_prior else "")
    if tcfg.fit_prior and not model.prior_parameters():
        print(f"note: {TITLES[model.method]} has no learned prior; --fit-prior has nothing to fit", file=sys.stderr)
    elif tcfg.fit_prior:
        t0 = time.perf_counter()
        report, fits = fit_to_training_set(model, train, device, seed=tcfg.seed)
        report["seconds"] = round(time.perf_counter() - t0, 1)
        atomic_write(os.path.join(tcfg.run_dir, "fit_prior.json"), lambda f: json.dump(report, f, indent=1), mode="w")
        plot_fits(fits, os.path.join(tcfg.run_dir, "fit_prior.png"))
        print(f"prior fitted in {report['seconds']:.0f} s: validation KL(d) {report['val_kl_before']:.2f} -> "
              f"{report['val_kl_after']:.2f} nats per sequence ({tcfg.run_dir}/fit_prior.json)", file=sys.stderr)
    if out:
        model.save(out, data=train.name)
        print(f"model written to {out}", file=sys.stderr)


def resume_checkpoint(mcfg, tcfg, given):
    """(mcfg, tcfg, checkpoint) of the run to continue with --resume, the stored configs with
    the resumable flags given applied; (mcfg, tcfg, None) for a new run, whose folder must not
    hold one already."""
    ckpt_path = os.path.join(tcfg.run_dir, "checkpoint.pt")
    if not tcfg.resume:
        if os.path.exists(ckpt_path):
            raise SPYLError(f"{tcfg.run_dir} already holds a run; pass --resume to continue it or --run-dir to start "
                            "a new one")
        return mcfg, tcfg, None
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("format") != "spyl-train":
        raise SPYLError(f"{ckpt_path} is not a train.py checkpoint; cannot resume from it")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise SPYLError(f"{ckpt_path} has format version {ckpt.get('version')}, this code resumes version "
                        f"{CHECKPOINT_VERSION}")
    stored = {**ckpt["config"], **ckpt["train_config"]}
    asked = {**asdict(mcfg), **asdict(tcfg)}
    clash = sorted(k for k in given if k not in RESUMABLE and k in stored and stored[k] != asked[k])
    if clash:
        raise SPYLError(f"--resume continues the stored run, but these flags differ from it: {clash}; drop them or "
                        "start a new --run-dir")
    try:
        mcfg = SPYLConfig.from_dict(ckpt["config"])
        tcfg = TrainConfig(**{**ckpt["train_config"], **{k: asked[k] for k in given if k in RESUMABLE}})
    except (SPYLError, TypeError) as e:
        raise SPYLError(f"{ckpt_path} holds a config this code refuses: {e}") from None
    return mcfg, tcfg, ckpt


def init_processes(tcfg):
    """(device, rank, world size): one process, or one of torchrun's, its process group joined."""
    device = pick_device(tcfg.device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device, 0, 1
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def held_out_split(dataset):
    """The split the validation loss reads. Time series and speech validate on their validation
    split, so that whatever is chosen by watching these curves is not chosen on test. Sprites'
    protocol has no validation split: its loss is watched on test sequences, and nothing is
    chosen by it."""
    return "valid" if dataset in HAS_VALIDATION else "test"


def load_data(tcfg, device):
    """(training set, held-out set, the held-out sequences the validation loss reads, on device)."""
    train, held = load_dataset(tcfg.dataset, tcfg.data_dir, tcfg.sheets or None, tcfg.chars or None,
                               tcfg.data_root or None, held_out_split(tcfg.dataset))
    if tcfg.batch_size > len(train):
        raise SPYLError(f"batch size {tcfg.batch_size} is larger than the training set ({len(train)} sequences); "
                        "lower --batch-size")
    return train, held, held.batch(np.arange(min(tcfg.val_size, len(held))), device)


def build_model(mcfg, tcfg, ckpt, device, distributed):
    """(model, optimiser, what the step calls: the model, compiled or wrapped for DDP as asked,
    (first epoch, its first step, the log so far)): fresh, from --init-from, or as the checkpoint left them."""
    model = build(mcfg).to(device)
    if tcfg.channels_last and mcfg.frame_net == "conv":
        model = model.to(memory_format=torch.channels_last)
    model.fused_prior = tcfg.fused_prior
    optimizer = make_optimizer(model, tcfg.lr, cuda_graph=tcfg.cuda_graph, prior_lr=tcfg.prior_lr)
    start = (0, 0, [])
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = (ckpt["epoch"], ckpt["step"], json.loads(ckpt["log"]))
        set_rng_state(ckpt["rng"])
    elif tcfg.init_from:
        start_from(model, tcfg.init_from, mcfg)
    forward = torch.compile(model) if tcfg.compile else model
    if distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        forward = torch.nn.parallel.DistributedDataParallel(forward, device_ids=device_ids)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every batch has the same shape: pick the fastest kernels once
    return model, optimizer, forward, start


# Room a checkpoint needs: the weights and Adam's two moments (3 fp32 copies of the parameters),
# plus slack for the log and the RNG state.
CHECKPOINT_SLACK = 64 << 20


def announce(model, mcfg, tcfg, train, val_x, device, world, amp_dtype):
    """Clear the run folder of a killed run's temporaries, check it can take checkpoints, and
    say in one line what is about to train where (with the CPU hint where it applies)."""
    remove_stale_temporaries(tcfg.run_dir)
    n_params = sum(p.numel() for p in model.parameters())
    check_writable(tcfg.run_dir, need_bytes=3 * 4 * n_params + CHECKPOINT_SLACK)
    print(f"{TITLES[mcfg.method]}: {n_params / 1e6:.2f}M parameters | data {train.name}: "
          f"{len(train)} train / {len(val_x)} {held_out_split(tcfg.dataset)} for the validation loss | "
          f"{device}{f' x{world}' if world > 1 else ''} | {'bf16 autocast' if amp_dtype else 'fp32'} | run folder "
          f"{tcfg.run_dir}", file=sys.stderr)
    hint = cpu_hint(tcfg.preset, device, tcfg, len(train))
    if hint:
        print(hint, file=sys.stderr)


def save_checkpoint(path, model, optimizer, tcfg, data_name, log, epoch, at_step, sums):
    """The model's own checkpoint (config, weights, data set) plus what resuming needs: the
    optimiser, where the run stands (epoch, step, the sums of an unfinished epoch), RNG, the log."""
    atomic_torch_save({**model.checkpoint(data_name), "format": "spyl-train", "train_config": asdict(tcfg),
                       "optimizer": optimizer.state_dict(), "epoch": epoch, "step": at_step, "sums": sums,
                       "rng": rng_state(), "log": json.dumps(log)}, path)


def epoch_record(epoch, sums, n_batches, val_loss, swap, seconds, n_sequences, device):
    """The epoch's line of log.jsonl: mean loss terms, validation loss, swap figures, time, memory."""
    host_mib = peak_memory_mib(torch.device("cpu"))
    record = {"epoch": epoch + 1, "train": {k: v / n_batches for k, v in sums.items()}, "val_loss": val_loss,
              "seconds": round(seconds, 2), "seq_per_s": round(n_sequences / seconds, 1),
              "peak_host_mib": None if host_mib is None else round(host_mib), "swap": swap}
    if device.type == "cuda":
        record["peak_gpu_mib"] = round(peak_memory_mib(device))
    return record


def main(argv=None):
    # ---- config --------------------------------------------------------------
    mcfg, tcfg, given, why = parse_args(argv)
    mcfg, tcfg, ckpt = resume_checkpoint(mcfg, tcfg, given)
    ckpt_path = os.path.join(tcfg.run_dir, "checkpoint.pt")
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    device, rank, world = init_processes(tcfg)
    distributed, main_process = world > 1, rank == 0
    if main_process:
        print(f"preset {tcfg.preset}: {'the run being resumed' if ckpt is not None else why}", file=sys.stderr)
    if tcfg.cuda_graph and (device.type != "cuda" or distributed):
        raise SPYLError("--cuda-graph needs a single CUDA device, and this run is on "
                        f"{device}{f' x{world}' if distributed else ''}; drop --cuda-graph")
    amp_dtype = resolve_precision(tcfg.precision, device)
    seed_everything(tcfg.seed + rank)

    # ---- data ----------------------------------------------------------------
    train, held, val_x = load_data(tcfg, device)
    if ckpt is None:
        mcfg.dataset_size = len(train)  # N of the MI estimate: the training set's size
    judge_files = tcfg.judge.split(",") if tcfg.judge else judge_paths(train.name)
    judges = load_judges(judge_files, train.name, device) if tcfg.eval_every and judge_files else None

    # ---- model -----------------------------------------------------------------
    model, optimizer, forward, (start_epoch, start_step, log) = build_model(mcfg, tcfg, ckpt, device, distributed)
    step = TrainStep(forward, optimizer, device, amp_dtype, cuda_graph=tcfg.cuda_graph)
    if main_process:
        announce(model, mcfg, tcfg, train, val_x, device, world, amp_dtype)
    save = lambda epoch, at_step, sums: save_checkpoint(ckpt_path, model, optimizer, tcfg, train.name, log, epoch,
                                                        at_step, sums)

    # ---- loop ------------------------------------------------------------------
    stop = Stop() if main_process and not distributed else None
    # On a CPU reading the loss back costs nothing, so the bar moves every step; on a GPU every
    # read is a sync that stalls the queue of kernels, so it moves on the first step of an epoch
    # and then every log_every steps.
    sync_every = 1 if device.type == "cpu" else tcfg.log_every
    last_plot = 0.0
    # a method whose terms do not wait for a warm-up (model.SPYL.warms_up) has one phase, contrastive
    is_contrastive = lambda epoch: epoch >= tcfg.warmup_epochs or not model.warms_up
    paces = {}  # seconds per step of each phase, as measured in this process

    def later_steps(epoch, per_epoch):  # {contrastive: steps} of the epochs after this one
        phases = [is_contrastive(e) for e in range(epoch + 1, tcfg.epochs)]
        return {phase: phases.count(phase) * per_epoch for phase in set(phases)}

    try:
        for epoch in range(start_epoch, tcfg.epochs):
            contrastive = is_contrastive(epoch)
            batches = [b[rank::world] for b in batch_indices(len(train), tcfg.batch_size * world, tcfg.seed, epoch)]
            first = start_step if epoch == start_epoch else 0
            sums = ckpt["sums"] if (ckpt is not None and epoch == start_epoch and first) else None
            bar = tqdm(total=len(batches), initial=first, desc=f"epoch {epoch + 1}/{tcfg.epochs}",
                       disable=not main_process, leave=False, dynamic_ncols=True, file=sys.stderr, unit="step")
            model.train()
            t0 = time.time()
            # with each batch its rows of the training set (FHVAE's table reads them)
            inputs = zip(prefetch(train, batches[first:], device),
                         (torch.as_tensor(b, device=device) for b in batches[first:]))
            sums, stopped_at = train_epoch(step, inputs, first, len(batches), sums,
                                           contrastive, sync_every, bar, stop,
                                           later=later_steps(epoch, len(batches)), paces=paces, where=(epoch,
                                                                                                       tcfg.run_dir))
            bar.close()
            if stopped_at is not None:
                save(epoch, stopped_at, sums)
                print(f"stopped: checkpoint at epoch {epoch + 1}, step {stopped_at} in {ckpt_path}; continue with "
                      "--resume", file=sys.stderr)
                sys.exit(130)
            if distributed:
                dist.barrier()
            seconds, n_steps = time.time() - t0, len(batches) - first
            paces[contrastive] = seconds / max(n_steps, 1)

            # ---- evaluation ------------------------------------------------------------
            # judges is None when eval_every is 0
            evaluating = judges is not None and (epoch + 1) % tcfg.eval_every == 0
            val_loss, recon, swap = validate(model, val_x, judges if evaluating else None, held, device, amp_dtype,
                                             contrastive, tcfg)
            log.append(epoch_record(epoch, sums, len(batches), val_loss, swap, seconds,
                                    n_steps * tcfg.batch_size * world, device))

            # ---- checkpoint -------------------------------------------------------------
            if main_process:
                draw = time.time() - last_plot > 10 or epoch + 1 == tcfg.epochs  # short epochs: drawing would dominate
                last_plot = time.time() if draw else last_plot
                write_epoch(log, tcfg, val_x[:4], recon, draw)
                if (epoch + 1) % tcfg.save_every == 0 or epoch + 1 == tcfg.epochs or (stop and stop.requested):
                    save(epoch + 1, 0, None)
                if stop is not None and stop.requested and epoch + 1 < tcfg.epochs:
                    print(f"stopped: checkpoint after epoch {epoch + 1} in {ckpt_path}; continue with --resume",
                          file=sys.stderr)
                    sys.exit(130)
            if distributed:
                dist.barrier()
    finally:
        if stop is not None:
            stop.close()

    if main_process:
        finish(model, train, tcfg, device)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    run_main(main)

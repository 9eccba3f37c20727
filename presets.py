"""How to train: TrainConfig (one flag of train.py per field) and the presets, whole sets of its
values and SPYLConfig's, every one named in the one table below.

`--preset auto`, the default, picks the data set's own preset for the time series and speech,
else `paper` on a CUDA device, which it is sized for, and `cpu` anywhere else.
"""
from dataclasses import dataclass

import torch

from dataloader import AUDIO, DATASETS, N_CHARACTERS, TIMESERIES, data_shape
from utils import between, check_bools, check_fields, one_of, pick_device


@dataclass
class TrainConfig:
    """How to train; defaults are the paper's (Adam 2e-3, batch 128, 50 warm-up epochs)."""
    # a whole set of defaults (PRESETS); auto: the data set's own, else paper on CUDA, cpu elsewhere
    preset: str = "auto"
    # auto (Sprites, else the built-in set, loudly), sprites, builtin, etth1, airquality, physionet, fsdd, fsdd_200ms
    dataset: str = "auto"
    sheets: str = ""             # folder of the sprite-sheet parts, or of the pre-built sprites_*.npy
    data_dir: str = "data"       # where the composed Sprites are cached
    # folder holding the time-series or speech data sets (default: $SPYL_DATA_ROOT, else data/, downloading)
    data_root: str = ""
    chars: int = 0               # use only this many characters of the built-in set (0: all 1296)
    epochs: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    prior_lr: float = 0.0        # a learning rate of the prior p(d_t | d_<t) alone (0: --lr, as the paper)
    warmup_epochs: int = 50      # epochs before the contrastive terms switch on
    seed: int = 0
    device: str = "auto"         # auto, cpu, cuda, cuda:N, mps
    threads: int = 0             # torch's CPU threads (0: its own choice); 1 gives the same floats on any machine
    # auto (bf16 autocast on CUDA and on CPUs with bf16 units: AMX or AVX512-BF16), bf16, fp32
    precision: str = "auto"
    channels_last: bool = True   # channels-last convolutions
    compile: bool = False        # torch.compile the model
    # CUDA: capture each phase's whole step (forward, backward, Adam) as one CUDA graph (step.py)
    cuda_graph: bool = False
    # the sampled prior chain as fused cells, a few launches fewer per step (model.SPYL.fused_prior)
    fused_prior: bool = False
    run_dir: str = "runs/spyl"   # checkpoint, logs, curves and sample PNGs go here
    save_every: int = 1          # epochs between checkpoints
    resume: bool = False         # continue the run in run_dir from its checkpoint
    out: str = ""                # also write the final model here (e.g. weights/model.pth)
    # start from this model file's weights (SPYL.save or a checkpoint), with a fresh optimiser
    init_from: str = ""
    # after the last epoch, fit the prior alone to the posteriors (fit_prior.py's defaults) before writing the model
    fit_prior: bool = False
    # held-out sequences for the validation loss: the validation split where the data set has one, else test
    val_size: int = 512
    eval_every: int = 10         # epochs between swap evaluations (0: never)
    # judge files for those evaluations, comma-separated (default: every judge of the data set in weights/)
    judge: str = ""
    log_every: int = 20          # steps between progress-bar updates and finiteness checks

    def __post_init__(self):
        check_bools(self)
        check_fields(self, TRAIN_RULES)


_COUNT = between(1, 10**6)
TRAIN_RULES = {
    "dataset": one_of(*DATASETS), "chars": between(0, N_CHARACTERS), "epochs": _COUNT, "batch_size": _COUNT,
    "lr": between(1e-8, 1.0, float), "prior_lr": between(0.0, 1.0, float), "warmup_epochs": between(0, 10**6),
    "seed": between(0, 2**32 - 1), "threads": between(0, 1024), "precision": one_of("auto", "bf16", "fp32"),
    "save_every": _COUNT, "val_size": _COUNT, "eval_every": between(0, 10**6), "log_every": _COUNT,
}

# Time series: the sizes of the published protocol's models (s and d of 8, hidden 64), the MLP
# pair over flattened windows, and a schedule that trains in minutes on a CPU. The KL weights are
# a tenth of the video ones: a sequence here has a few hundred values to reconstruct, not 98,304
# pixels, and at the video weights the static posterior collapses onto the prior (PhysioNet:
# KL(s) 0.009 nats, s told nothing). The KL weight of each set is the one
# `timeseries_experiments.py --train` chose for SPYL on the validation split (0.01, 0.1 or 1;
# weights/runs/timeseries/selection-*.json).
# fp32 on every machine: these models are too small for bf16 to pay, and a preset that followed the
# CPU's bf16 units would make the shipped figures depend on which machine trained them.
SERIES = {"frame_net": "mlp", "s_dim": 8, "d_dim": 8, "g_dim": 32, "hidden": 64, "lr": 1e-3, "eval_every": 0,
          "log_every": 1, "w_kl_s": 0.1, "w_kl_d": 0.1, "precision": "fp32"}
# Speech (FSDD): segments of log-mel frames (the TIMIT protocol's 200 ms, or 640 ms: a whole
# word), the MLP pair per frame. The time-series widths keep the shipped models at 0.6 MB each
# (the repository travels to GPU machines whole); a wider s (64) is what pays most within them.
# The schedule is what `audio_experiments.py --search` chose on the validation utterances, for
# both units (docs/speech.md).
# DBSE reads s from the loudest step: a segment's first step is often the silence before the word.
SPEECH = {"s_dim": 64, "batch_size": 64, "bank_factor": 2, "n_negatives": 64, "epochs": 60, "warmup_epochs": 20,
          "log_every": 20, "anchor": "loudest"}


def for_data_set(name, **values):
    """A data set's preset: SERIES with the data set's own shape (steps, step size) and values."""
    frames, (x_dim,) = data_shape(name)
    return {**SERIES, "dataset": name, "frames": frames, "x_dim": x_dim, **values}


PRESETS = {
    "paper": {},
    # Half the conv widths, batch 32, a smaller negative bank, the prior fitted at the end: a
    # real model on 2 CPU cores in 1-2 hours. PyTorch's default initialisation, not the
    # reference code's N(0, 0.01^2), which at this budget leaves the action in s; most of the
    # budget is warm-up, since a contrastive epoch costs several warm-up epochs (docs/cpu_preset.md).
    "cpu": {"conv_width": 32, "batch_size": 32, "bank_factor": 2, "n_negatives": 32, "init": "torch", "epochs": 24,
            "warmup_epochs": 20, "eval_every": 6, "fit_prior": True},
    # Seconds per epoch on any machine, for smoke tests; in fp32, since on a CPU with AVX512-BF16
    # (no AMX) bf16 convolutions this narrow ran an epoch 7x slower (32.7 s against 4.4).
    "tiny": {"dataset": "builtin", "chars": 48, "conv_width": 8, "g_dim": 16, "hidden": 32, "s_dim": 16, "d_dim": 8,
             "batch_size": 16, "n_negatives": 16, "epochs": 2, "warmup_epochs": 1, "val_size": 32, "log_every": 5,
             "precision": "fp32"},
    "etth1": for_data_set("etth1", batch_size=7, n_negatives=16, epochs=300, warmup_epochs=50),
    "airquality": for_data_set("airquality", batch_size=32, n_negatives=64, epochs=200, warmup_epochs=30),
    "physionet": for_data_set("physionet", batch_size=32, n_negatives=64, epochs=100, warmup_epochs=20,
                              w_kl_s=1.0, w_kl_d=1.0),
    "fsdd": for_data_set("fsdd", **SPEECH),
    "fsdd_200ms": for_data_set("fsdd_200ms", **SPEECH),
}
TRAIN_RULES["preset"] = one_of("auto", *PRESETS)


def auto_preset(dataset, device_name):
    """(preset, why) for --preset auto: a time-series or speech set's own preset; else the paper's
    on a CUDA device, which it is sized for, and the cpu preset anywhere else (MPS included: the
    paper preset has not been timed there, and the cpu preset finishes on any machine)."""
    if dataset in {**TIMESERIES, **AUDIO}:
        return dataset, f"the {dataset} data set's own"
    device = pick_device(device_name)
    if device.type == "cuda":
        return "paper", f"a CUDA device ({torch.cuda.get_device_name(device)}); --preset cpu for the small model"
    return "cpu", (f"no CUDA device here ({device.type} only): a real model in 1-2 hours on 2 cores; "
                   "--preset paper for the paper's settings, sized for a GPU")

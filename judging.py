"""The judges: supervised classifiers of Sprites sequences that score disentanglement.

One judge is never trusted alone: two judges that are both perfect on real data
can read a blurry generated frame differently, so the swap experiments ask an
ensemble of independently trained judges and report their spread. Two
architectures read a sequence differently:
- `lstm`: a per-frame conv encoder to a feature vector, a bidirectional LSTM
  over time, heads on its final states;
- `spatial`: per-frame conv maps that keep the 8 x 8 spatial layout, pooled over
  time (mean and max), heads on the pooled maps; no recurrence at all.
Five heads each: action (9) and skin, pants, top, hair (6 each). Trained on 900
of the 1000 training characters, half of each batch with a little pixel noise;
one temperature per head is then fitted on the other 100 (never on the test
split), because an under-confident judge caps the IS of everything it reads
(one trained on noisy frames alone read real test data at IS 8.61). A judge may judge only if it is near-perfect and
confident on the real test split (the gate below).
`judge.py` is the script that trains and recalibrates them.
"""
import glob
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from dataloader import LABEL_NAMES, N_CLASSES, batch_indices, hold_out, prefetch
from model import ConvFrameEncoder, SPYLConfig
from utils import SPYLError, atomic_torch_save, load_checkpoint, seed_everything

JUDGE_FORMAT = "spyl-judge"
JUDGE_VERSION = 2
# The gate, on the real test split: no model can score above what real data scores, so a judge
# whose action softmax reads real sequences below IS 8.99 would cap every model's IS below it.
MIN_ACCURACY = 0.999   # per head
MIN_IS = 8.99          # of the action head (9 is the limit)
MAX_H_Y_X = 0.01       # mean entropy of the action head, nats
NOISE = 0.05           # std of the pixel noise the robustness figure is measured with
ARCHS = ("lstm", "spatial")
DEFAULT_MEMBERS = (("lstm", 0), ("lstm", 1), ("spatial", 0), ("spatial", 1))


def judge_path(dataset, arch, seed, folder="weights"):
    """File of one ensemble member: weights/judge-lstm-0.pth (Sprites), weights/judge_builtin-lstm-0.pth."""
    stem = "judge" if dataset == "sprites" else f"judge_{dataset}"
    return os.path.join(folder, f"{stem}-{arch}-{seed}.pth")


def judge_paths(dataset, folder="weights"):
    """Every ensemble member for a data set found in folder, sorted by name."""
    stem = "judge" if dataset == "sprites" else f"judge_{dataset}"
    return sorted(glob.glob(os.path.join(folder, f"{stem}-*.pth")))


def inception_metrics(probs):
    """IS, H(y|x), H(y) (natural log) from N x K class probabilities.

    IS = exp(mean_x KL(p(y|x) || p(y))) = exp(H(y) - H(y|x)); H(y|x) = mean entropy;
    H(y) = entropy of the mean.
    """
    probs = probs.double().clamp_min(1e-12)
    p_y = probs.mean(0)
    h_y_x = -(probs * probs.log()).sum(1).mean()
    h_y = -(p_y * p_y.log()).sum()
    kl = (probs * (probs.log() - p_y.log())).sum(1).mean()
    return {"IS": kl.exp().item(), "H(y|x)": h_y_x.item(), "H(y)": h_y.item()}


@dataclass
class JudgeConfig:
    """The judge's architecture, its seed and the data set it judges."""
    dataset: str = "sprites"
    arch: str = "lstm"      # lstm or spatial (see the module docstring)
    conv_width: int = 16
    g_dim: int = 64         # lstm: per-frame feature
    hidden: int = 64        # lstm: hidden size per direction
    seed: int = 0

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise SPYLError(f"unknown judge arch {self.arch!r}; choose one of {', '.join(ARCHS)}")


class SpatialFrames(nn.Module):
    """Per-frame conv maps: 3 x 64 x 64 -> 4w x 8 x 8, the layout of the frame kept."""
    GRID = 8  # 64 pixels halved three times

    def __init__(self, width):
        super().__init__()
        self.channels = 4 * width
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2,
                                                                                                        inplace=True)]
            c_in = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Judge(nn.Module):
    """Sequence classifier B x T x 3 x 64 x 64 -> five logit tensors (action, skin, pants, top, hair)."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        if cfg.arch == "lstm":
            self.frames = ConvFrameEncoder(SPYLConfig(conv_width=cfg.conv_width, g_dim=cfg.g_dim))
            self.lstm = nn.LSTM(cfg.g_dim, cfg.hidden, batch_first=True, bidirectional=True)
            features = 2 * cfg.hidden
        else:
            self.frames = SpatialFrames(cfg.conv_width)
            # the maps pooled over time by mean and by max
            features = 2 * self.frames.channels * SpatialFrames.GRID ** 2
        self.heads = nn.ModuleList(nn.Linear(features, k) for k in N_CLASSES)
        self.register_buffer("temperature", torch.ones(len(N_CLASSES)))  # per head, fitted after training

    def forward(self, x):
        B, T = x.shape[:2]
        f = self.frames(x.flatten(0, 1))
        if self.config.arch == "lstm":
            h, _ = self.lstm(f.view(B, T, -1))                                   # B x T x 2H
            H = self.config.hidden
            h = torch.cat([h[:, -1, :H], h[:, 0, H:]], dim=1)                   # B x 2H
        else:
            f = f.view(B, T, *f.shape[1:])                                       # B x T x 4w x 8 x 8
            h = torch.cat([f.mean(1), f.amax(1)], dim=1).flatten(1)              # B x (2 * 4w * 64)
        return [head(h) / t for head, t in zip(self.heads, self.temperature)]

    def save(self, path, report):
        """State dict, config and the test report (accuracy, calibration), written atomically."""
        atomic_torch_save({"format": JUDGE_FORMAT, "version": JUDGE_VERSION, "config": asdict(self.config),
                           "report": report,
                           "model": {k: v.detach().cpu() for k, v in self.state_dict().items()}}, path)

    @classmethod
    def load(cls, path, dataset=None, map_location="cpu", gate=True):
        """Load a judge that may judge: trained on `dataset` and passing the gate on real test
        sequences (accuracy per head, IS and H(y|x) of the action head), as recorded at training.
        gate=False skips the gate (to recalibrate a judge that misses it)."""
        ckpt = load_checkpoint(path)
        if not isinstance(ckpt, dict) or ckpt.get("format") != JUDGE_FORMAT:
            raise SPYLError(f"{path} is not a judge checkpoint; train one with `python judge.py`")
        if ckpt.get("version") != JUDGE_VERSION:
            raise SPYLError(f"{path} is a judge of format version {ckpt.get('version', 1)}, without the calibration "
                            f"record this code requires; retrain the judges with `python judge.py`")
        cfg = JudgeConfig(**ckpt["config"])
        if dataset is not None and cfg.dataset != dataset:
            raise SPYLError(f"{path} judges the {cfg.dataset} set, not {dataset}; train judges with `python judge.py "
                            f"--dataset {dataset}`")
        failed = gate_failures(ckpt.get("report") or {}) if gate else []
        if failed:
            raise SPYLError(f"{path} may not judge: on real test sequences {'; '.join(failed)}; retrain it")
        judge = cls(cfg)
        try:
            judge.load_state_dict(ckpt["model"])
        except RuntimeError:
            raise SPYLError(f"{path} has weights of another shape than its config; the file is damaged") from None
        judge.report = ckpt.get("report") or {}
        return judge.to(map_location).eval()


def gate_failures(report):
    """What a judge's test report misses of the gate, as short phrases (empty: it may judge)."""
    acc, cal = report.get("accuracy") or {}, report.get("action_calibration") or {}
    failed = [f"{k} accuracy {acc.get(k)} is missing or below {MIN_ACCURACY:.1%}" for k in LABEL_NAMES
              if acc.get(k) is None or acc[k] < MIN_ACCURACY]
    if cal.get("IS") is None or cal["IS"] < MIN_IS:
        failed.append(f"action IS {cal.get('IS')} is missing or below {MIN_IS}")
    if cal.get("H(y|x)") is None or cal["H(y|x)"] > MAX_H_Y_X:
        failed.append(f"action H(y|x) {cal.get('H(y|x)')} is missing or above {MAX_H_Y_X}")
    return failed


def load_judges(paths, dataset, device="cpu"):
    """{file name: Judge} for the given judge files, each through the gate; one line if there are none."""
    if not paths:
        raise SPYLError(f"no judges for the {dataset} set in weights/; train them with `python judge.py --dataset "
                        f"{dataset}`")
    for p in paths:
        if not os.path.isfile(p):
            raise SPYLError(f"no judge at {p}; train judges with `python judge.py --dataset {dataset}`")
    return {os.path.basename(p): Judge.load(p, dataset, device) for p in paths}


@torch.no_grad()
def measure_on(judge, data, device, batch_size=256, noise=NOISE, seed=0):
    """Per-head accuracy on data, the same under pixel noise of std `noise`, and the action head's
    IS, H(y|x), H(y): the record the gate reads."""
    judge.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    correct, noisy, probs = np.zeros(len(N_CLASSES)), np.zeros(len(N_CLASSES)), []
    for idx in np.array_split(np.arange(len(data)), max(1, len(data) // batch_size)):
        x = data.batch(idx, device)
        y = torch.from_numpy(data.labels[idx]).to(device)
        logits = judge(x)
        probs.append(logits[0].float().softmax(1).cpu())
        correct += [(l.argmax(1) == y[:, k]).sum().item() for k, l in enumerate(logits)]
        x_noisy = (x + noise * torch.randn(x.shape, generator=gen).to(device)).clamp_(0, 1)
        noisy += [(l.argmax(1) == y[:, k]).sum().item() for k, l in enumerate(judge(x_noisy))]
    return {"accuracy": {n: float(c / len(data)) for n, c in zip(LABEL_NAMES, correct)},
            f"accuracy_noise_{noise}": {n: float(c / len(data)) for n, c in zip(LABEL_NAMES, noisy)},
            "action_calibration": inception_metrics(torch.cat(probs))}


@torch.no_grad()
def fit_temperature(judge, data, device, batch_size=256, tolerance=1e-5):
    """Per head, a temperature fitted to the held-out sequences, read clean as test data are,
    by their negative log-likelihood; sets judge.temperature.

    A held-out set the judge gets entirely right has no finite NLL optimum (sharper is always
    a little better), so we take the largest temperature within `tolerance` nats of the best
    (temperature_for): as sharp as the held-out data ask, no sharper.
    """
    judge.eval()
    judge.temperature.fill_(1.0)
    logits, labels = [[] for _ in N_CLASSES], []
    for idx in np.array_split(np.arange(len(data)), max(1, len(data) // batch_size)):
        for k, l in enumerate(judge(data.batch(idx, device))):
            logits[k].append(l.float().cpu())
        labels.append(torch.from_numpy(data.labels[idx]))
    y = torch.cat(labels)
    for k, l in enumerate(logits):
        judge.temperature[k] = temperature_for(torch.cat(l), y[:, k], tolerance)
    return judge.temperature.tolist()


def temperature_for(logits, y, tolerance=1e-5):
    """The largest temperature on the log grid 0.01 .. 10 whose NLL of labels y (N) under
    logits / T (N x K) is within `tolerance` nats of the grid's best."""
    grid = torch.logspace(-2, 1, 301)
    nll = torch.stack([F.cross_entropy(logits / t, y) for t in grid])
    return grid[nll <= nll.min() + tolerance].max().item()


def train_judge(cfg, train, test, device, epochs, batch_size, lr, max_noise=2 * NOISE):
    """Train one judge on the training characters but a held-out tenth (pixel noise of random std
    up to max_noise on half the sequences, so it does not hang on exact pixel values), fit its
    temperatures on the held-out characters; returns (judge, test report)."""
    seed_everything(cfg.seed)
    train, held_out = hold_out(train, seed=cfg.seed)
    judge = Judge(cfg).to(device)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * (len(train) // batch_size))
    name = f"{cfg.arch}-{cfg.seed}"
    for epoch in range(epochs):
        judge.train()
        t0 = time.time()
        batches = batch_indices(len(train), batch_size, cfg.seed, epoch)
        bar = tqdm(prefetch(train, batches, device), total=len(batches),
                   desc=f"judge {name} epoch {epoch + 1}/{epochs}", leave=False, file=sys.stderr)
        for step, (x, idx) in enumerate(zip(bar, batches)):
            y = torch.from_numpy(train.labels[idx]).to(device)
            # half the sequences clean, half with noise of random std: robust to noise, yet the
            # BatchNorm statistics and the confidence are those of clean frames too
            sigma = max_noise * torch.rand(len(x), 1, 1, 1, 1, device=device) * (torch.rand(len(x), 1, 1, 1, 1,
                                                                                            device=device) < 0.5)
            x = (x + sigma * torch.randn_like(x)).clamp_(0, 1)
            loss = sum(F.cross_entropy(l, y[:, k]) for k, l in enumerate(judge(x)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        print(f"judge {name} epoch {epoch + 1}/{epochs} | last loss {loss.item():.2e} | {time.time() - t0:.0f}s",
              file=sys.stderr)
    return judge, calibrate(judge, held_out, test, device)


def calibrate(judge, held_out, test, device):
    """Fit the judge's temperatures on the held-out training characters, then measure it on the
    test split; returns the report the gate reads."""
    temps = fit_temperature(judge, held_out, device)
    print(f"judge {judge.config.arch}-{judge.config.seed}: temperatures fitted on {len(held_out)} held-out training "
          "sequences: "
          + " ".join(f"{n} {t:.3f}" for n, t in zip(LABEL_NAMES, temps)), file=sys.stderr)
    return {"temperature": dict(zip(LABEL_NAMES, temps)), "held_out_sequences": len(held_out),
            **measure_on(judge, test, device)}


def recalibrate(path, train, test, device):
    """Refit the temperatures of the judge in `path` on its own held-out characters (the same ones
    it was trained without: they follow from its seed); returns (judge, its updated report)."""
    judge = Judge.load(path, train.name, device, gate=False)
    _, held_out = hold_out(train, seed=judge.config.seed)
    return judge, {**judge.report, **calibrate(judge, held_out, test, device)}

"""The judge: a supervised classifier of Sprites sequences that scores disentanglement.

Per-frame conv encoder, a bidirectional LSTM over time, five heads on its final
states: action (9) and skin, pants, top, hair (6 each). Trained on the training
split only; it may judge only if it is near-perfect on the real test split.

    python judge.py                       # real Sprites -> weights/judge.pth
    python judge.py --dataset builtin     # built-in set -> weights/judge_builtin.pth
"""
import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from dataloader import LABEL_NAMES, N_CLASSES, batch_indices, load_dataset, prefetch
from model import ConvFrameEncoder, SPYLConfig
from utils import SPYLError, atomic_torch_save, atomic_write, load_checkpoint, pick_device, run_main, seed_everything

MIN_ACCURACY = 0.995  # per head, on real test sequences, before a judge may score anything
JUDGE_FORMAT = "spyl-judge"


def default_path(dataset):
    """Where the judge for a data set lives: weights/judge.pth for Sprites."""
    return "weights/judge.pth" if dataset == "sprites" else f"weights/judge_{dataset}.pth"


@dataclass
class JudgeConfig:
    """The judge's architecture and the data set it judges."""
    dataset: str = "sprites"
    conv_width: int = 16
    g_dim: int = 64
    hidden: int = 64


class Judge(nn.Module):
    """Sequence classifier B x T x 3 x 64 x 64 -> five logit tensors (action, skin, pants, top, hair)."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.frames = ConvFrameEncoder(SPYLConfig(conv_width=cfg.conv_width, g_dim=cfg.g_dim))
        self.lstm = nn.LSTM(cfg.g_dim, cfg.hidden, batch_first=True, bidirectional=True)
        self.heads = nn.ModuleList(nn.Linear(2 * cfg.hidden, k) for k in N_CLASSES)

    def forward(self, x):
        B, T = x.shape[:2]
        h, _ = self.lstm(self.frames(x.flatten(0, 1)).view(B, T, -1))     # B x T x 2H
        H = self.config.hidden
        h = torch.cat([h[:, -1, :H], h[:, 0, H:]], dim=1)                  # B x 2H
        return [head(h) for head in self.heads]

    def save(self, path, accuracy):
        """State dict, config and per-head test accuracy, written atomically."""
        atomic_torch_save({"format": JUDGE_FORMAT, "version": 1, "config": asdict(self.config), "accuracy": accuracy,
                           "model": {k: v.detach().cpu() for k, v in self.state_dict().items()}}, path)

    @classmethod
    def load(cls, path, dataset=None, map_location="cpu", min_accuracy=MIN_ACCURACY):
        """Load a judge that may judge: trained on `dataset`, with a recorded test accuracy
        of at least min_accuracy on every head."""
        ckpt = load_checkpoint(path)
        if not isinstance(ckpt, dict) or ckpt.get("format") != JUDGE_FORMAT:
            raise SPYLError(f"{path} is not a judge checkpoint; train one with `python judge.py`")
        cfg = JudgeConfig(**ckpt["config"])
        if dataset is not None and cfg.dataset != dataset:
            raise SPYLError(f"{path} judges the {cfg.dataset} set, not {dataset}; train one with `python judge.py --dataset {dataset}`")
        acc = ckpt.get("accuracy") or {}
        low = {k: acc.get(k) for k in LABEL_NAMES if acc.get(k) is None or acc[k] < min_accuracy}
        if low:
            raise SPYLError(f"{path} may not judge: its recorded test accuracy {low} is missing or below {min_accuracy:.1%} per head; retrain it")
        judge = cls(cfg)
        try:
            judge.load_state_dict(ckpt["model"])
        except RuntimeError:
            raise SPYLError(f"{path} has weights of another shape than its config; the file is damaged") from None
        judge.accuracy = acc
        return judge.to(map_location).eval()


@torch.no_grad()
def accuracy(judge, data, device, batch_size=256):
    """Per-head accuracy of the judge on a whole SequenceData."""
    judge.eval()
    correct = np.zeros(len(N_CLASSES))
    for idx in np.array_split(np.arange(len(data)), max(1, len(data) // batch_size)):
        logits = judge(data.batch(idx, device))
        y = torch.from_numpy(data.labels[idx]).to(device)
        correct += [(l.argmax(1) == y[:, k]).sum().item() for k, l in enumerate(logits)]
    return {name: float(c / len(data)) for name, c in zip(LABEL_NAMES, correct)}


def main(argv=None):
    p = argparse.ArgumentParser(description="Train the judge classifier.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="sprites", help="sprites or builtin")
    p.add_argument("--sheets", default="", help="folder of sprite-sheet parts or pre-built npy files")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--chars", type=int, default=0, help="built-in set: use this many characters (0: all)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="", help="default: weights/judge.pth (Sprites) or weights/judge_builtin.pth")
    a = p.parse_args(argv)
    device = pick_device(a.device)
    seed_everything(a.seed)
    if a.dataset not in ("sprites", "builtin"):
        raise SPYLError(f"unknown dataset {a.dataset!r}; use sprites or builtin")
    train, test = load_dataset(a.dataset, a.data_dir, a.sheets or None, a.chars or None)
    out = a.out or default_path(train.name)
    judge = Judge(JudgeConfig(dataset=train.name)).to(device)
    opt = torch.optim.Adam(judge.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=a.epochs * (len(train) // a.batch_size))
    for epoch in range(a.epochs):
        judge.train()
        t0 = time.time()
        batches = batch_indices(len(train), a.batch_size, a.seed, epoch)
        bar = tqdm(prefetch(train, batches, device), total=len(batches), desc=f"judge epoch {epoch + 1}/{a.epochs}", leave=False, file=sys.stderr)
        for step, (x, idx) in enumerate(zip(bar, batches)):
            y = torch.from_numpy(train.labels[idx]).to(device)
            loss = sum(F.cross_entropy(l, y[:, k]) for k, l in enumerate(judge(x)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        acc = accuracy(judge, test, device)
        print(f"judge epoch {epoch + 1}/{a.epochs} | test accuracy " + " ".join(f"{k} {v:.4f}" for k, v in acc.items())
              + f" | {time.time() - t0:.0f}s", file=sys.stderr)
    judge.save(out, acc)
    atomic_write(os.path.splitext(out)[0] + ".json", lambda f: json.dump({"dataset": train.name, "test_accuracy": acc}, f, indent=1), mode="w")
    verdict = "may judge" if min(acc.values()) >= MIN_ACCURACY else f"is below {MIN_ACCURACY:.1%} on some head and may NOT judge"
    print(f"judge written to {out}; it {verdict}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)

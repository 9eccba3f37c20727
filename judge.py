"""Train the judge ensemble (judging.py), or refit only its temperatures.

    python judge.py                       # real Sprites -> weights/judge-{lstm,spatial}-{0,1}.pth (+ .json)
    python judge.py --dataset builtin     # built-in set -> weights/judge_builtin-*.pth
    python judge.py --members lstm:3      # one more member
    python judge.py --recalibrate         # refit the temperatures of the existing files, no training
"""
import json
import os
import sys
import time

from dataloader import load_dataset
from judging import ARCHS, DEFAULT_MEMBERS, JudgeConfig, gate_failures, judge_path, recalibrate, train_judge
from utils import ArgumentParser, SPYLError, atomic_write, between, one_of, pick_device, run_main


def parse_members(text):
    """'lstm:0,spatial:1' -> [('lstm', 0), ('spatial', 1)], or one line saying what is wrong."""
    members = []
    for item in text.split(","):
        arch, _, seed = item.partition(":")
        if arch not in ARCHS or not seed.isdigit():
            raise SPYLError(f"--members takes ARCH:SEED items separated by commas, ARCH one of {', '.join(ARCHS)}; "
                            f"got {item!r}")
        members.append((arch, int(seed)))
    return members


def main(argv=None):
    p = ArgumentParser(description="Train the judge ensemble.")
    p.add_argument("--dataset", type=one_of("sprites", "builtin"), default="sprites", help="sprites or builtin")
    p.add_argument("--members", default=",".join(f"{a}:{s}" for a, s in DEFAULT_MEMBERS),
                   help="ARCH:SEED,... judges to train")
    p.add_argument("--sheets", default="", help="folder of sprite-sheet parts or pre-built npy files")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--chars", type=between(0, 6 ** 4), default=0,
                   help="built-in set: use this many characters (0: all)")
    p.add_argument("--epochs", type=between(1, 10**4), default=5)
    p.add_argument("--batch-size", type=between(1, 10**5), default=64)
    p.add_argument("--lr", type=between(1e-8, 1.0, float), default=2e-3)
    p.add_argument("--device", default="auto")
    p.add_argument("--out-dir", default="weights")
    p.add_argument("--recalibrate", action="store_true",
                   help="no training: refit the temperatures of the members' existing files in --out-dir and rewrite "
                        "their reports")
    a = p.parse_args(argv)
    members = parse_members(a.members)
    if a.dataset not in ("sprites", "builtin"):
        raise SPYLError(f"unknown dataset {a.dataset!r}; use sprites or builtin")
    device = pick_device(a.device)
    train, test = load_dataset(a.dataset, a.data_dir, a.sheets or None, a.chars or None)
    for arch, seed in members:
        t0 = time.time()
        out = judge_path(train.name, arch, seed, a.out_dir)
        if a.recalibrate:
            judge, report = recalibrate(out, train, test, device)
        else:
            judge, report = train_judge(JudgeConfig(dataset=train.name, arch=arch, seed=seed), train, test, device,
                                        a.epochs, a.batch_size, a.lr)
            report = {"dataset": train.name, "arch": arch, "seed": seed, "epochs": a.epochs,
                      "test_sequences": len(test), "train_seconds": round(time.time() - t0), **report}
        judge.save(out, report)
        atomic_write(os.path.splitext(out)[0] + ".json", lambda f: json.dump(report, f, indent=1), mode="w")
        failed = gate_failures(report)
        cal = report["action_calibration"]
        print(f"{out}: test accuracy " + " ".join(f"{k} {v:.4f}" for k, v in report["accuracy"].items())
              + f" | IS {cal['IS']:.4f} H(y|x) {cal['H(y|x)']:.5f} | "
              + ("may judge" if not failed else "may NOT judge: " + "; ".join(failed)), file=sys.stderr)


if __name__ == "__main__":
    run_main(main)

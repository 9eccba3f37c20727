"""judge.py end to end on a small built-in set: training writes a judge and its report,
--recalibrate refits the temperatures only, bad members get one line."""
import json
import subprocess
import sys

import torch

from conftest import ROOT
from judging import gate_failures
from utils import load_checkpoint


def run(*args):
    return subprocess.run([sys.executable, "judge.py", "--dataset", "builtin", "--chars", "60", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_train_then_recalibrate(tmp_path):
    p = run("--epochs", "1", "--members", "spatial:3", "--out-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr[-2000:]
    path = tmp_path / "judge_builtin-spatial-3.pth"
    report = json.loads((tmp_path / "judge_builtin-spatial-3.json").read_text())
    # 5 of 46 train characters
    assert report["arch"] == "spatial" and report["seed"] == 3 and report["held_out_sequences"] == 45
    assert set(report["temperature"]) == {"action", "skin", "pants", "top", "hair"} and "action_calibration" in report
    # the verdict printed is the gate's on the report written: refused with its reasons, or admitted
    failed = gate_failures(report)
    verdict = ("may NOT judge: " + "; ".join(failed)) if failed else "may judge"
    assert p.stderr.rstrip().splitlines()[-1].endswith(verdict)
    before = load_checkpoint(path)
    before["model"]["temperature"].fill_(3.0)  # as if fitted by another rule
    torch.save(before, path)
    p = run("--recalibrate", "--members", "spatial:3", "--out-dir", str(tmp_path))
    assert p.returncode == 0, p.stderr[-2000:]
    after = load_checkpoint(path)
    assert not torch.equal(after["model"]["temperature"], torch.full((5,), 3.0))
    weights = [k for k in after["model"] if k != "temperature"]
    assert all(torch.equal(after["model"][k], before["model"][k]) for k in weights)  # no training happened
    rewritten = json.loads((tmp_path / "judge_builtin-spatial-3.json").read_text())
    assert rewritten["train_seconds"] == report["train_seconds"]


def test_bad_members_one_line():
    p = run("--members", "lstm:0,cnn:1")
    assert p.returncode == 2 and "ARCH:SEED" in p.stderr and "'cnn:1'" in p.stderr and "Traceback" not in p.stderr

"""bench.py end to end on the tiny preset: every measurement is taken and written."""
import json
import subprocess
import sys

import torch

from conftest import ROOT
from utils import resolve_precision


def test_bench_reports_every_measurement(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "bench.py", "--presets", "tiny", "--rows",
                          "plain,+no-read-back,+fused-prior", "--steps", "2",
                          "--warmup-steps", "1", "--profile", "--device", "cpu", "--eval-preset", "tiny",
                          "--eval-sequences", "63", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [(r["preset"], r["mode"]) for r in report["train_steps"]] == [("tiny", "plain"), ("tiny", "+no-read-back"),
                                                                         ("tiny", "+fused-prior")]
    assert report["torch"] == __import__("torch").__version__ and report["date"] and report["warmup_steps"] == 1
    # every row after plain includes +bf16, which on a CPU is what train.py would pick: bf16 on AMX, else fp32
    cpu_auto = "fp32" if resolve_precision("auto", torch.device("cpu")) is None else "bf16"
    for r in report["train_steps"]:
        for phase in ("warm-up", "contrastive"):
            m = r[phase]
            assert m["seq_per_s"] > 0 and m["median_step_ms"] > 0 and 0 < m["host_issue_ms"]
            assert m["precision"] == ("fp32" if r["mode"] == "plain" else cpu_auto)
            assert m["launches"] > 100 and m["gpu_ms"] is None     # on a CPU: ATen kernels counted, no GPU time
        # the contrastive step adds the bank and two views: many more kernels than a warm-up step
        assert r["contrastive"]["launches"] > 1.5 * r["warm-up"]["launches"]
        assert r["host_rss_mib"] > 50 and r["peak_mib"] == r["host_rss_mib"]  # on CPU the peak is the RSS
    assert report["eval_seq_per_s"] > 0 and report["eval_repeats"] == 2
    assert {"draw", "encode", "decode"} <= set(report["eval_stage_seconds"])
    assert len([k for k in report["eval_stage_seconds"] if k.startswith("judge")]) == 4
    assert "+fused-prior" in res.stdout and "vs above" in res.stdout and "swap evaluation" in res.stdout


def test_bench_refuses_an_unknown_row_and_the_graph_row_off_cuda_in_one_line():
    res = subprocess.run([sys.executable, "bench.py", "--presets", "tiny", "--rows", "plain,fp16"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "unknown row or preset ['fp16']" in res.stderr and "+compile" in res.stderr
    res = subprocess.run([sys.executable, "bench.py", "--presets", "tiny", "--rows", "plain,+graph", "--device",
                          "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "row +graph needs a CUDA device" in res.stderr
    assert res.stderr.strip().count("\n") == 0

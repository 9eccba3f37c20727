"""bench.py end to end on the tiny preset: every measurement is taken and written."""
import json
import subprocess
import sys

from conftest import ROOT


def test_bench_reports_every_measurement(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "bench.py", "--presets", "tiny", "--steps", "1", "--device", "cpu", "--eval-preset", "tiny", "--eval-sequences", "63",
                          "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [(r["preset"], r["mode"]) for r in report["train_steps"]] == [("tiny", "plain"), ("tiny", "fast")]
    for r in report["train_steps"]:
        assert r["warm-up"] > 0 and r["contrastive"] > 0
        assert r["contrastive"] < r["warm-up"] * 1.5  # it adds the bank and two views: never much faster
        assert r["host_rss_mib"] > 50 and r["peak_mib"] == r["host_rss_mib"]  # on CPU the peak is the RSS
    assert report["eval_seq_per_s"] > 0 and report["eval_repeats"] == 2
    assert {"draw", "encode", "decode"} <= set(report["eval_stage_seconds"]) and len([k for k in report["eval_stage_seconds"] if k.startswith("judge")]) == 4
    assert "fast" in res.stdout and "swap evaluation" in res.stdout


def test_bench_refuses_an_unknown_mode_in_one_line():
    res = subprocess.run([sys.executable, "bench.py", "--presets", "tiny", "--modes", "fast,fp16"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "unknown mode or preset ['fp16']" in res.stderr and "bf16+compile" in res.stderr

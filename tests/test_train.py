"""train.py end to end on the built-in set: outputs, exact resume, DDP, bad input."""
import json
import os
import subprocess
import sys

import pytest
import torch

import train
from conftest import ROOT
from model import PRIOR_PREFIXES, SPYL
from utils import SPYLError, load_checkpoint

FAST = ["--preset", "tiny", "--chars", "12", "--batch-size", "8", "--bank-factor", "1", "--n-negatives", "4",
        "--val-size", "16", "--log-every", "3", "--epochs", "2", "--warmup-epochs", "1", "--eval-every", "0"]


def run(tmp_path, name, *extra):
    train.main(FAST + ["--run-dir", str(tmp_path / name), *extra])
    return tmp_path / name


def test_outputs_and_released_model(tmp_path):
    out = tmp_path / "weights" / "model.pth"
    d = run(tmp_path, "a", "--out", str(out))
    for f in ("checkpoint.pt", "log.jsonl", "curves.png", "recon.png"):
        assert (d / f).stat().st_size > 0, f
    log = [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert "nce_s" not in log[0]["train"] and "nce_s" in log[1]["train"]  # warm-up, then contrastive
    assert 100 < log[0]["peak_host_mib"] <= log[1]["peak_host_mib"] < 24 * 1024  # a peak, in MiB, of a real process
    model = SPYL.load(out)
    assert model.config.conv_width == 8 and model.config.dataset_size == 81


def test_fit_prior_stage_writes_a_model_whose_prior_alone_changed(tmp_path):
    d = run(tmp_path, "fit", "--fit-prior")
    report = json.loads((d / "fit_prior.json").read_text())
    assert report["val_kl_after"] < report["val_kl_before"] and report["seconds"] > 0
    assert (d / "fit_prior.png").stat().st_size > 1000
    fitted, joint = SPYL.load(d / "model.pth").state_dict(), load_checkpoint(d / "checkpoint.pt")["model"]
    changed = {k for k in joint if not torch.equal(joint[k], fitted[k])}
    # the checkpoint keeps the jointly trained prior
    assert changed and all(k.startswith(PRIOR_PREFIXES) for k in changed)


def test_resume_is_exact(tmp_path):
    straight = run(tmp_path, "straight")
    half = run(tmp_path, "half", "--epochs", "1")
    train.main(FAST + ["--run-dir", str(half), "--resume"])
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(half / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    la = [json.loads(x)["train"] for x in (straight / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["train"] for x in (half / "log.jsonl").read_text().splitlines()]
    assert la == lb


def test_existing_run_is_not_overwritten(tmp_path):
    d = run(tmp_path, "a", "--epochs", "1")
    before = (d / "checkpoint.pt").read_bytes()
    with pytest.raises(SPYLError, match="--resume"):
        run(tmp_path, "a", "--epochs", "1")
    with pytest.raises(SPYLError, match="differ.*s_dim"):
        train.main(FAST + ["--run-dir", str(d), "--resume", "--s-dim", "5"])
    assert (d / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("args,match", [
    (["--preset", "huge"], "--preset must be one of auto, paper, cpu"),
    (["--device", "tpu"], "device"),
    (["--batch-size", "5000"], "larger than the training set"),
    (["--precision", "fp8"], "precision"),
    (["--negative-mode", "medium"], "negative_mode"),
])
def test_bad_input_one_line_and_nonzero_exit(tmp_path, args, match):
    cmd = [sys.executable, "train.py", *FAST, "--run-dir", str(tmp_path / "r"), *args]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and match in last and "Traceback" not in p.stderr
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_ddp_two_processes_on_cpu(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", "train.py",
           *FAST, "--epochs", "1", "--device", "cpu", "--run-dir", str(tmp_path / "ddp"), "--out",
           str(tmp_path / "m.pth")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "x2" in p.stderr  # the banner names the world size
    log = [json.loads(x) for x in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["train"]["loss"] > 0
    assert SPYL.load(tmp_path / "m.pth").config.conv_width == 8


def test_threads_sets_torchs_cpu_threads_and_may_change_on_resume(tmp_path):
    before = torch.get_num_threads()
    try:
        train.main(FAST + ["--run-dir", str(tmp_path / "r"), "--epochs", "1", "--threads", "1"])
        assert torch.get_num_threads() == 1
        stored = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["train_config"]
        assert stored["threads"] == 1
        train.main(FAST + ["--run-dir", str(tmp_path / "r"), "--epochs", "2", "--resume", "--threads", "2"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

"""Fault injection: kills, Ctrl-C, NaNs, full disks, and fuzzed input files."""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datasets import sprites as S
import train
import utils
from conftest import ROOT, SHEETS
from model import SPYL
from utils import SPYLError, load_checkpoint

FAST = ["--preset", "tiny", "--chars", "12", "--batch-size", "8", "--bank-factor", "1", "--n-negatives", "4",
        "--val-size", "16", "--log-every", "2", "--epochs", "2", "--warmup-epochs", "1", "--eval-every", "0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# A launcher that makes each checkpoint write pause half-way, so a test can kill the process inside it.
SLOW_SAVE = """
import sys, time, torch, train, utils
def slow_save(obj, path):
    def write(f):
        torch.save(obj, f)
        f.flush()
        print("SAVING", flush=True)
        time.sleep(60)
    utils.atomic_write(path, write)
train.atomic_torch_save = slow_save
utils.run_main(lambda: train.main(sys.argv[1:]))
"""


# A launcher whose contrastive steps (epoch 2 on) take 2 s, so two Ctrl-C can land inside one step.
SLOW_STEP = """
import sys, time, model, utils, train
forward = model.SPYL.forward
def slow(self, x, contrastive=True, index=None):
    if contrastive:
        time.sleep(2)
    return forward(self, x, contrastive, index)
model.SPYL.forward = slow
utils.run_main(lambda: train.main(sys.argv[1:]))
"""


def train_cmd(run_dir, *extra):
    return [sys.executable, "train.py", *FAST, "--run-dir", str(run_dir), *extra]


def final_state(run_dir):
    ckpt = load_checkpoint(os.path.join(run_dir, "checkpoint.pt"))
    log = [json.loads(x)["train"] for x in open(os.path.join(run_dir, "log.jsonl")).read().splitlines()]
    return ckpt, log


def assert_same_run(a, b):
    (ca, la), (cb, lb) = a, b
    assert ca["epoch"] == cb["epoch"]
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    assert la == lb


def assert_loadable_or_absent(run_dir):
    path = os.path.join(run_dir, "checkpoint.pt")
    if os.path.exists(path):
        load_checkpoint(path)  # raises if truncated or unreadable


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    subprocess.run(train_cmd(d), cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=600)
    return final_state(d)


def test_kill_at_random_points_then_resume_is_bit_identical(tmp_path, reference):
    rng = random.Random(7)
    resumed = 0
    for point in range(2):
        d = tmp_path / f"kill{point}"
        p = subprocess.Popen(train_cmd(d), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait for the first checkpoint (after epoch 1), then kill at a random moment of epoch 2,
        # which takes seconds: well inside the second that follows the first checkpoint
        deadline = time.time() + 300
        while not (d / "checkpoint.pt").exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.05, 1.0))
        assert p.poll() is None, "the run ended before the kill: nothing would test resuming"
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert_loadable_or_absent(d)
        assert load_checkpoint(d / "checkpoint.pt")["epoch"] < 2  # killed mid-run: only --resume can finish it
        subprocess.run(train_cmd(d, "--resume"), cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=600)
        resumed += 1
        assert_same_run(final_state(d), reference)
        assert not [f for f in os.listdir(d) if f.startswith(".tmp-")]
    assert resumed == 2


def test_kill_during_a_checkpoint_write(tmp_path, reference):
    d = tmp_path / "run"
    launcher = tmp_path / "launch.py"
    launcher.write_text(SLOW_SAVE)
    env = {**ENV, "PYTHONPATH": ROOT}
    p = subprocess.Popen([sys.executable, str(launcher), *FAST, "--run-dir", str(d)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout.readline().strip() == "SAVING"   # epoch 1's checkpoint is being written...
    p.send_signal(signal.SIGKILL)                    # ...and the process dies in the middle of it
    p.wait()
    assert not (d / "checkpoint.pt").exists()       # no half-written checkpoint under the real name
    assert [f for f in os.listdir(d) if f.startswith(".tmp-")]
    p = subprocess.run(train_cmd(d, "--resume"), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "does not exist" in p.stderr
    # a fresh start in the same folder clears the debris and reproduces the reference exactly
    subprocess.run(train_cmd(d), cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=600)
    assert_same_run(final_state(d), reference)
    assert not [f for f in os.listdir(d) if f.startswith(".tmp-")]


def test_ctrl_c_saves_and_resume_is_exact(tmp_path, reference):
    d = tmp_path / "run"
    log = open(tmp_path / "stderr.txt", "w")
    p = subprocess.Popen(train_cmd(d), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=log)
    while not (d / "checkpoint.pt").exists() and p.poll() is None:  # epoch 1 is done and saved
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)  # early in epoch 2, which takes seconds
    p.wait(timeout=300)
    assert p.returncode == 130, (tmp_path / "stderr.txt").read_text()[-1000:]
    ckpt = load_checkpoint(d / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] > 0  # saved in the middle of epoch 2
    subprocess.run(train_cmd(d, "--resume"), cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=600)
    assert_same_run(final_state(d), reference)


def test_second_ctrl_c_quits_at_once(tmp_path):
    d = tmp_path / "run"
    cmd = [sys.executable, "-c", SLOW_STEP, *FAST, "--run-dir", str(d)]
    p = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # (each step of epoch 2 sleeps 2 s: the first Ctrl-C waits for the step's end, the second must not)
    while not (d / "checkpoint.pt").exists() and p.poll() is None:  # epoch 1 is done and saved
        time.sleep(0.05)
    time.sleep(0.5)
    before = (d / "checkpoint.pt").read_bytes()
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    t0 = time.time()
    err = p.communicate(timeout=60)[1]
    assert time.time() - t0 < 20 and p.returncode == 130
    assert "Traceback" not in err
    assert (d / "checkpoint.pt").read_bytes() == before  # the epoch-1 checkpoint, untouched
    assert not [f for f in os.listdir(d) if f.startswith(".tmp-")]


def test_same_seed_same_run_other_seed_other_run(tmp_path, reference):
    a = tmp_path / "a"
    subprocess.run(train_cmd(a), cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=600)
    assert_same_run(final_state(a), reference)
    b = tmp_path / "b"
    subprocess.run(train_cmd(b, "--seed", "1"), cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=600)
    cb, lb = final_state(b)
    assert lb != reference[1]
    assert not torch.equal(cb["model"]["s_mean.weight"], reference[0]["model"]["s_mean.weight"])


def test_nan_stops_with_one_line_and_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    d = tmp_path / "run"
    train.main(FAST + ["--run-dir", str(d), "--epochs", "1"])
    good = (d / "checkpoint.pt").read_bytes()
    forward = SPYL.forward
    calls = {"n": 0}

    def poisoned(self, x, contrastive=True, index=None):
        terms = forward(self, x, contrastive, index)
        calls["n"] += 1
        if self.training and calls["n"] == 3:
            terms["kl_d"] = terms["kl_d"] * float("nan")
            terms["loss"] = terms["loss"] + terms["kl_d"]
        return terms

    monkeypatch.setattr(SPYL, "forward", poisoned)
    with pytest.raises(SPYLError, match=r"kl_d became nan at epoch 2, step 3"):
        train.main(FAST + ["--run-dir", str(d), "--resume"])
    assert (d / "checkpoint.pt").read_bytes() == good
    assert not [f for f in os.listdir(d) if f.startswith(".tmp-")]


def test_unwritable_output_is_caught_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SPYLError, match="not writable"):
        train.main(FAST + ["--run-dir", str(blocker / "run")])


def test_full_disk_is_caught_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(utils.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(SPYLError, match="MiB free"):
        train.main(FAST + ["--run-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_disk_full_during_a_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.pth"
    target.write_bytes(b"old")

    def no_space(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SPYLError, match="disk full"):
        utils.atomic_write(target, no_space)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.pth"]


# ---- fuzzing the readers -----------------------------------------------------------

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def real_png():
    path = os.path.join(SHEETS, "hair", "0.png")
    if not os.path.isfile(path):
        pytest.skip("../shared/lpc-sprites not present")
    return open(path, "rb").read()


def read_or_our_error(path):
    try:
        sheet = S.read_part(str(path), "hair/0.png")
    except SPYLError as e:
        assert "hair/0.png" in str(e)
        return "refused"
    assert sheet.shape == (1344, 832, 4) and sheet.dtype == np.uint8
    return "read"


def test_fuzz_part_reader(real_png, tmp_path):
    outcomes = {}

    @FUZZ
    @given(cut=st.integers(0, 200_000), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                       max_size=8))
    def damaged(cut, flips):
        data = bytearray(real_png[:cut] if cut < len(real_png) else real_png)
        for pos, val in flips:
            if data:
                data[pos % len(data)] = val
        (tmp_path / "p.png").write_bytes(bytes(data))
        r = read_or_our_error(tmp_path / "p.png")
        outcomes[r] = outcomes.get(r, 0) + 1

    damaged()
    from PIL import Image
    for size, mode in (((64, 64), "RGBA"), ((832, 1344), "L"), ((1344, 832), "RGB")):  # wrong shapes and types
        Image.new(mode, size).save(tmp_path / "p.png")
        outcomes[read_or_our_error(tmp_path / "p.png")] = outcomes.get(read_or_our_error(tmp_path / "p.png"), 0) + 1
    assert outcomes.get("refused", 0) > 0
    print("part reader fuzz outcomes:", outcomes)


array_shapes = st.lists(st.integers(0, 9), min_size=0, max_size=5).map(tuple)
dtypes = st.sampled_from([np.float32, np.float64, np.uint8, np.int64, np.bool_, np.complex64, "U3"])


def assert_one_line_naming(error, name):
    assert "\n" not in str(error) and name in str(error), str(error)


@FUZZ
@given(shape=array_shapes, dtype=dtypes, which=st.sampled_from("XAD"), split=st.sampled_from(["train", "test"]))
@example(shape=(2, 8, 4, 6), dtype=np.float32, which="A", split="test")     # the right shape, labels all zero
@example(shape=(2, 8, 9), dtype=np.uint8, which="D", split="train")
@example(shape=(2, 8, 64, 64, 3), dtype=np.complex64, which="X", split="train")
@example(shape=(2, 8, 64, 64, 3), dtype=np.float64, which="X", split="test")  # black frames: a valid file
def test_fuzz_legacy_loader_shapes_and_types(tmp_path_factory, shape, dtype, which, split):
    folder = tmp_path_factory.mktemp("legacy")
    from test_data import write_legacy
    write_legacy(folder, n=2)
    np.save(folder / f"sprites_{which}_{split}.npy", np.zeros(shape, dtype=dtype))
    valid = which == "X" and shape == (2, 8, 64, 64, 3) and np.dtype(dtype).kind in "fiub"  # black frames are images
    try:
        train, test = S.load_legacy_npy(str(folder))
    except SPYLError as e:
        assert not valid, f"a valid file refused: {e}"
        assert_one_line_naming(e, f"sprites_{which}_{split}.npy")
        return
    assert valid, f"{shape} {dtype} as sprites_{which}_{split}.npy was accepted"  # zero labels are not one-hot
    data = train if split == "train" else test
    assert data.x.shape == (2, 8, 64, 64, 3) and data.x.dtype == np.uint8 and (data.x == 0).all()


@FUZZ
@given(cut=st.integers(0, 2000), garbage=st.binary(max_size=64), which=st.sampled_from("XAD"))
def test_fuzz_legacy_loader_truncated_and_garbage(tmp_path_factory, cut, garbage, which):
    folder = tmp_path_factory.mktemp("legacy")
    from test_data import write_legacy
    labels, actions = write_legacy(folder, n=2)
    path = folder / f"sprites_{which}_test.npy"
    data = path.read_bytes()
    path.write_bytes(data[:cut] + garbage)
    try:
        _, test = S.load_legacy_npy(str(folder))
    except SPYLError as e:
        assert_one_line_naming(e, f"sprites_{which}_test.npy")
        return
    # accepted only if what was read is the file as written (trailing bytes after the array are not read)
    written = data[:cut] + garbage
    assert written[:len(data)] == data
    assert (test.labels[:, 0] == actions).all() and (test.labels[:, 1:] == labels).all()


def test_pickled_object_arrays_are_refused(tmp_path):
    from test_data import write_legacy
    write_legacy(tmp_path, n=2)
    np.save(tmp_path / "sprites_A_train.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(SPYLError, match="not a readable"):
        S.load_legacy_npy(str(tmp_path))

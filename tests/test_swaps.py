"""The judge and the swap experiments: metrics, the judge's gate, the script end to end."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, tiny_config
from dataloader import load_sprites
from judge import Judge, JudgeConfig
from model import SPYL
from swaps_experiments import evaluate, inception_metrics
from utils import SPYLError

JUDGE = os.path.join(ROOT, "weights", "judge.pth")


def test_metrics_of_a_perfect_judge():
    probs = torch.eye(9).repeat(5, 1)  # one-hot, every class equally often
    m = inception_metrics(probs)
    assert m["IS"] == pytest.approx(9, rel=1e-6)
    assert m["H(y|x)"] == pytest.approx(0, abs=1e-6)
    assert m["H(y)"] == pytest.approx(math.log(9), rel=1e-6)


def test_metrics_of_a_uniform_judge():
    m = inception_metrics(torch.full((20, 9), 1 / 9))
    assert m["IS"] == pytest.approx(1, rel=1e-6)
    assert m["H(y|x)"] == pytest.approx(math.log(9), rel=1e-6) and m["H(y)"] == pytest.approx(math.log(9), rel=1e-6)


def test_metrics_of_a_collapsed_judge():
    m = inception_metrics(torch.eye(9)[[3] * 10])  # always the same confident answer
    assert m["IS"] == pytest.approx(1, rel=1e-6) and m["H(y)"] == pytest.approx(0, abs=1e-6)


def save_judge(path, accuracy, dataset="builtin"):
    j = Judge(JudgeConfig(dataset=dataset, conv_width=4, g_dim=8, hidden=8))
    j.save(path, accuracy)
    return j


def test_judge_round_trip_and_gate(tmp_path):
    perfect = {k: 1.0 for k in ("action", "skin", "pants", "top", "hair")}
    j = save_judge(tmp_path / "j.pth", perfect).eval()
    loaded = Judge.load(tmp_path / "j.pth", "builtin")
    x = torch.rand(2, 8, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(j(x), loaded(x)))
    with pytest.raises(SPYLError, match="judges the builtin set"):
        Judge.load(tmp_path / "j.pth", "sprites")
    save_judge(tmp_path / "low.pth", {**perfect, "skin": 0.99})
    with pytest.raises(SPYLError, match="may not judge.*skin"):
        Judge.load(tmp_path / "low.pth", "builtin")
    save_judge(tmp_path / "none.pth", {})
    with pytest.raises(SPYLError, match="may not judge"):
        Judge.load(tmp_path / "none.pth", "builtin")
    SPYL(tiny_config()).save(tmp_path / "model.pth")
    with pytest.raises(SPYLError, match="not a judge"):
        Judge.load(tmp_path / "model.pth")


@pytest.mark.skipif(not os.path.isfile(JUDGE), reason="weights/judge.pth not present")
def test_shipped_judge_is_perfect_on_real_sequences(sprites_dir):
    from judge import accuracy
    judge = Judge.load(JUDGE, "sprites")
    _, test = load_sprites(str(sprites_dir), None, download=False)
    sub = type(test)(test.x[::8], test.labels[::8], "sprites")  # 333 sequences, every action
    assert min(accuracy(judge, sub, "cpu").values()) >= 0.99


@pytest.mark.skipif(not os.path.isfile(JUDGE), reason="weights/judge.pth not present")
def test_fresh_model_scores_near_chance(sprites_dir):
    judge = Judge.load(JUDGE, "sprites")
    _, test = load_sprites(str(sprites_dir), None, download=False)
    sub = type(test)(test.x[:270], test.labels[:270], "sprites")
    r = evaluate(SPYL(tiny_config(conv_width=8)), judge, sub, "cpu", repeats=2, progress=False)
    assert r["action"]["mean"] < 0.3  # chance is 1/9
    assert max(r[a]["mean"] for a in ("skin", "pants", "top", "hair")) < 0.45  # chance is 1/6
    assert r["IS"]["mean"] < 3


@pytest.mark.skipif(not os.path.isfile(JUDGE), reason="weights/judge.pth not present")
def test_script_end_to_end(sprites_dir, tmp_path):
    SPYL(tiny_config(conv_width=8)).save(tmp_path / "m.pth", data="sprites")
    cmd = [sys.executable, "swaps_experiments.py", "--weights", str(tmp_path / "m.pth"), "--repeats", "2",
           "--data-dir", str(sprites_dir), "--fig-dir", str(tmp_path / "fig"), "--pairs", "0:9,100:2000"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "action" in p.stdout and "IS" in p.stdout
    report = json.loads((tmp_path / "fig" / "swaps.json").read_text())
    assert report["repeats"] == 2 and report["test_sequences"] == 2664 and len(report["weights_sha256"]) == 64
    assert 0 <= report["results"]["action"]["mean"] <= 1 and report["results"]["IS"]["std"] >= 0
    from PIL import Image
    png = Image.open(tmp_path / "fig" / "swap.png")
    assert png.size[1] > png.size[0] / 4  # 8 rows: two pairs of four
    gif = Image.open(tmp_path / "fig" / "swap.gif")
    assert gif.n_frames == 8
    assert (tmp_path / "fig" / "samples.png").stat().st_size > 0


@pytest.mark.parametrize("args,match", [
    (["--weights", "nope.pth"], "does not exist"),
    (["--judge", "nope.pth"], "no judge at nope.pth; train one with `python judge.py"),
])
def test_script_bad_input(tmp_path, args, match):
    SPYL(tiny_config()).save(tmp_path / "m.pth", data="builtin")
    cmd = [sys.executable, "swaps_experiments.py", "--weights", str(tmp_path / "m.pth"), *args]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and match in p.stderr and "Traceback" not in p.stderr


def test_script_refuses_a_judge_for_another_data_set(tmp_path):
    SPYL(tiny_config()).save(tmp_path / "m.pth", data="builtin")
    save_judge(tmp_path / "j.pth", {k: 1.0 for k in ("action", "skin", "pants", "top", "hair")}, dataset="sprites")
    cmd = [sys.executable, "swaps_experiments.py", "--weights", str(tmp_path / "m.pth"), "--judge", str(tmp_path / "j.pth")]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "judges the sprites set, not builtin" in p.stderr


def test_swap_curves_from_run_logs(tmp_path):
    from swaps_experiments import main
    for name, acc in (("spyl", 0.9), ("dsvae", 0.5)):
        (tmp_path / name).mkdir()
        rows = [{"epoch": e, "swap": {"action": acc * e / 4, "skin": 0.5, "pants": 0.6, "top": 0.7, "hair": 0.8}} for e in (2, 4)]
        (tmp_path / name / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main(["--curves", str(tmp_path / "spyl"), str(tmp_path / "dsvae"), "--fig-dir", str(tmp_path / "fig")])
    from PIL import Image
    assert Image.open(tmp_path / "fig" / "swap_accuracy.png").size[0] > 300
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "log.jsonl").write_text(json.dumps({"epoch": 1, "swap": None}) + "\n")
    with pytest.raises(SPYLError, match="no swap evaluations"):
        main(["--curves", str(tmp_path / "empty"), "--fig-dir", str(tmp_path / "fig")])


MODEL = os.path.join(ROOT, "weights", "model.pth")


@pytest.mark.skipif(not (os.path.isfile(JUDGE) and os.path.isfile(MODEL)), reason="shipped weights not present")
def test_shipped_model_disentangles(sprites_dir):
    # The README's table on a tenth of the test set, one repeat: near the top, far from chance.
    judge = Judge.load(JUDGE, "sprites")
    _, test = load_sprites(str(sprites_dir), None, download=False)
    sub = type(test)(test.x[::10], test.labels[::10], "sprites")  # 267 sequences, every action
    r = evaluate(SPYL.load(MODEL), judge, sub, "cpu", repeats=1, progress=False)
    assert r["action"]["mean"] > 0.97                                      # chance is 1/9
    assert min(r[a]["mean"] for a in ("skin", "pants", "top", "hair")) > 0.95  # chance is 1/6
    assert r["IS"]["mean"] > 8 and r["H(y|x)"]["mean"] < 0.15              # chance: 1 and ln 9
    assert r["action|static_kept"]["mean"] < 0.25                          # motion barely leaks into s

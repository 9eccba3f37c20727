"""What a new user meets first: a bar that moves from the first step, a hint when the paper
preset runs on a CPU, starting from a model file, and the model from torch.hub."""
import json
import sys

import pytest
import torch

import presets
import train
from conftest import ROOT, tiny_config
from dataloader import load_builtin
from model import SPYL
from step import TrainStep
from test_train import FAST
from utils import SPYLError


class RecordingBar:
    """Stands in for tqdm: records each update and the last postfix."""

    def __init__(self):
        self.updates, self.postfix = [], {}

    def update(self, n):
        self.updates.append(n)

    def set_postfix(self, d):
        self.postfix = d


def run_epoch(n_batches, sync_every):
    model = SPYL(tiny_config(conv_width=4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    bar = RecordingBar()
    batches = ((torch.rand(4, 8, 3, 64, 64), None) for _ in range(n_batches))
    step = TrainStep(model, opt, torch.device("cpu"))
    sums, stopped = train.train_epoch(step, batches, 0, n_batches, None, False, sync_every, bar, None,
                                      later={False: 10})
    return bar, sums, stopped


def test_the_bar_moves_every_step_on_a_cpu():
    bar, sums, stopped = run_epoch(4, sync_every=1)
    assert bar.updates == [1, 1, 1, 1] and stopped is None
    assert sums["loss"] > 0 and "run left" in bar.postfix and "recon" in bar.postfix


def test_the_bar_shows_the_first_step_when_syncs_are_windowed():
    bar, _, _ = run_epoch(7, sync_every=5)  # a GPU's windowed reads: first step, then every 5, then the last
    assert bar.updates == [1, 5, 1]


def test_run_left_counts_the_dearer_contrastive_steps_ahead():
    assert train.run_left(1.0, False, 5, {False: 10}, {}) == 15                                   # warm-up only
    # a guess, not yet timed
    assert train.run_left(1.0, False, 5, {False: 10, True: 10}, {}) == 15 + 10 * train.CONTRASTIVE_COST
    # the guess: the cpu preset's run
    log = [json.loads(line) for line in open(train.CPU_PRESET_LOG)]
    warm, contrastive = ([r["seconds"] for r in log if ("nce_s" in r["train"]) == phase] for phase in (False, True))
    assert len(warm) == 20 and len(contrastive) == 4
    assert train.CONTRASTIVE_COST == sum(contrastive) / 4 / (sum(warm) / 20)
    assert 2.5 < train.CONTRASTIVE_COST < 3.5 and train.contrastive_cost("no/such/log.jsonl") == 1.0
    # timed in an earlier epoch
    assert train.run_left(1.0, False, 5, {True: 10}, {True: 2.5}) == 5 + 25
    # the pace measured now wins
    assert train.run_left(3.0, True, 2, {True: 4}, {False: 1.0, True: 9.0}) == 6 + 12


def test_format_duration():
    assert train.format_duration(95) == "1m35s" and train.format_duration(3725) == "1h02m"


def test_hint_when_the_paper_preset_runs_on_a_cpu():
    tcfg = train.TrainConfig()
    hint = train.cpu_hint("paper", torch.device("cpu"), tcfg, 9000)
    assert hint.startswith("note:") and "--preset cpu" in hint and "\n" not in hint
    rows = [r for r in json.load(open(train.PAPER_ON_CPU))["train_steps"] if r["preset"] == "paper"]
    slowest = max(9000 / r["contrastive"] / 60 for r in rows)                  # the figures are the bench file's
    assert f"{slowest:.0f} min after (bench.py, bench/results_cpu_paper_variants.json)" in hint
    assert train.cpu_hint("paper", torch.device("cuda"), tcfg, 9000) is None   # a mocked GPU device: no hint
    assert train.cpu_hint("cpu", torch.device("cpu"), tcfg, 9000) is None


def test_train_prints_the_hint_before_training(tmp_path, capsys, monkeypatch):
    class FirstStep(Exception):
        pass

    def first_step(*args, **kw):
        raise FirstStep
    monkeypatch.setattr(train, "train_epoch", first_step)  # stop where training would begin
    with pytest.raises(FirstStep):
        train.main(["--preset", "paper", "--dataset", "builtin", "--chars", "12", "--batch-size", "8",
                    "--n-negatives", "32", "--epochs", "1", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert "note: the paper preset is sized for a GPU" in err and "--preset cpu" in err


def test_auto_picks_the_paper_preset_on_cuda_the_cpu_preset_elsewhere_and_the_data_sets_own(monkeypatch):
    mcfg, tcfg, _, why = train.parse_args([])
    assert tcfg.preset == "cpu" and mcfg.conv_width == train.PRESETS["cpu"]["conv_width"] and "--preset paper" in why
    monkeypatch.setattr(presets, "pick_device", lambda name: torch.device("cuda"))  # a CUDA machine, faked
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    mcfg, tcfg, _, why = train.parse_args([])
    assert tcfg.preset == "paper" and mcfg.conv_width == 64 and tcfg.epochs == 1000 and "Fake GPU" in why
    assert train.parse_args(["--dataset", "etth1"])[1].preset == "etth1"
    assert train.parse_args(["--preset", "cpu"])[1].preset == "cpu"           # asked for: kept, on CUDA too
    mcfg, tcfg, _, _ = train.parse_args(["--batch-size", "64", "--conv-width", "8"])
    assert (tcfg.batch_size, mcfg.conv_width, tcfg.preset) == (64, 8, "paper")  # flags still override it


def test_train_with_no_flags_on_a_cpu_says_it_trains_the_cpu_preset_and_records_it(tmp_path, capsys, monkeypatch):
    class FirstStep(Exception):
        pass

    def first_step(*args, **kw):
        raise FirstStep
    monkeypatch.setattr(train, "train_epoch", first_step)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py"])
    monkeypatch.setattr(train, "load_dataset", lambda *a, **kw: load_builtin(chars=12))  # no download in a test
    with pytest.raises(FirstStep):
        train.main()
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("preset cpu: no CUDA device") and "--preset paper" in first
    monkeypatch.undo()
    small = ["--dataset", "builtin", "--chars", "12", "--conv-width", "4", "--batch-size", "8", "--n-negatives", "4",
             "--epochs", "1",
             "--warmup-epochs", "1", "--eval-every", "0", "--no-fit-prior", "--run-dir", str(tmp_path / "run")]
    train.main(small)  # no --preset: auto, the cpu preset's values under these flags
    stored = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    # the resolved name, not "auto"
    assert stored["train_config"]["preset"] == "cpu" and stored["config"]["init"] == "torch"


def test_init_from_starts_from_a_model_file(tmp_path):
    trained = tmp_path / "m.pth"
    train.main(FAST + ["--run-dir", str(tmp_path / "a"), "--out", str(trained), "--epochs", "3", "--warmup-epochs",
                       "3"])
    train.main(FAST + ["--run-dir", str(tmp_path / "b"), "--init-from", str(trained), "--epochs", "1",
                       "--warmup-epochs", "1"])
    train.main(FAST + ["--run-dir", str(tmp_path / "c"), "--epochs", "1", "--warmup-epochs", "1"])
    first = lambda run: json.loads((tmp_path / run / "log.jsonl").read_text().splitlines()[0])["train"]["recon"]
    assert first("b") < first("c")  # it starts where the model file left off, not from scratch
    model = SPYL(SPYL.load(trained).config)
    train.start_from(model, trained, model.config)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), SPYL.load(trained).state_dict().values()))
    with pytest.raises(SPYLError, match="architecture differs from this run's in \\['s_dim'\\]"):
        train.main(FAST + ["--run-dir", str(tmp_path / "d"), "--init-from", str(trained), "--s-dim", "5"])
    with pytest.raises(SPYLError, match="does not exist"):
        train.main(FAST + ["--run-dir", str(tmp_path / "e"), "--init-from", str(tmp_path / "nope.pth")])


def test_torch_hub_loads_the_released_model_and_an_untrained_one():
    import os
    if not os.path.isfile(os.path.join(ROOT, "weights", "model.pth")):
        pytest.skip("weights/model.pth not present")
    model = torch.hub.load(ROOT, "spyl", source="local")
    assert isinstance(model, SPYL) and not model.training and model.config.conv_width == 64
    x = torch.rand(2, 8, 3, 64, 64)
    with torch.no_grad():
        assert model.decode(*model.encode(x)[::2]).shape == x.shape
    fresh = torch.hub.load(ROOT, "spyl_untrained", source="local", s_dim=16, conv_width=8)
    assert fresh.training and fresh.config.s_dim == 16 and fresh.s_mean.out_features == 16

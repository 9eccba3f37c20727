"""Bad settings are stopped at the door: exit status 2, one line on stderr naming the flag, no
run folder, no file written; the same for values that come from a preset or a checkpoint."""
import argparse
import contextlib
import io
import os
import string
import tempfile
from dataclasses import fields

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bench
import fit_prior
import judge
import swaps_experiments
import timeseries_experiments
import train
import utils
from conftest import tiny_config
from model import CONFIG_RULES, SPYL, SPYLConfig
from utils import Rule, SPYLError, run_main


def run(main, argv):
    """(exit status, stderr) of a script's main as run from the command line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as e:
        run_main(main, argv)
    return e.value.code, err.getvalue()


def outside(rule):
    """Flag texts that a rule refuses: below and above its range, NaN, infinities, a fraction for
    an integer, a word; for choices, any other word."""
    if rule.choices is not None:
        return st.text(string.ascii_letters + "-_", min_size=1, max_size=10).filter(lambda t: t not in rule.choices)
    words = st.sampled_from(["abc", "nan", "inf", "-inf", "", "1e400"])
    if rule.kind is int:
        below = st.integers(max_value=rule.low - 1).map(str)
        words = words | st.sampled_from(["1.5", "0x10"])
    else:
        below = st.floats(max_value=rule.low, exclude_max=True, allow_nan=False, allow_infinity=False).map(repr)
    if rule.high is None:
        return below | words
    above = (st.integers(min_value=rule.high + 1).map(str) if rule.kind is int else
             st.floats(min_value=rule.high, exclude_min=True, allow_nan=False, allow_infinity=False).map(repr))
    return below | above | words


def assert_refused(code, err, flag):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and flag in lines[0] and lines[0].startswith("error: "), err


TRAIN_FLAGS = sorted({**CONFIG_RULES, **train.TRAIN_RULES}.items())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TRAIN_FLAGS).flatmap(lambda fr: st.tuples(st.just(fr[0]), outside(fr[1]))))
def test_train_refuses_every_out_of_range_flag_in_one_line(case):
    name, text = case
    flag = "--" + name.replace("_", "-")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        code, err = run(train.main, ["--preset", "tiny", "--run-dir", run_dir, f"{flag}={text}"])
        assert_refused(code, err, flag)
        assert not os.path.exists(run_dir) and os.listdir(tmp) == []


@pytest.mark.parametrize("name",
                         [f.name for cls in (SPYLConfig, train.TrainConfig) for f in fields(cls) if f.type in (bool,
                                                                                                               "bool")])
def test_train_refuses_a_value_given_to_a_switch(tmp_path, name):
    flag = "--" + name.replace("_", "-")
    code, err = run(train.main, ["--preset", "tiny", "--run-dir", str(tmp_path / "run"), f"{flag}=3"])
    assert_refused(code, err, flag)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, flag", [
    (["--batch-size", "0"], "--batch-size"), (["--batch-size", "-3"], "--batch-size"), (["--lr", "-1"], "--lr"),
    (["--epochs", "-1"], "--epochs"), (["--s-dim", "0"], "--s-dim"), (["--tau", "0"], "--tau"),
    (["--n-negatives", "100000"], "--n-negatives"),          # more than the bank (bank_factor x batch) holds
    (["--frames", "4"], "--frames"),                          # the built-in set has 8 frames
    (["--frame-net", "mlp", "--x-dim", "5"], "--frame-net"),  # the built-in set is images
    (["--device", "cuda:9" if torch.cuda.is_available() else "cuda"], "device"),
])
def test_train_refuses_the_reported_settings_and_those_that_do_not_go_together(tmp_path, argv, flag):
    code, err = run(train.main, ["--preset", "tiny", "--run-dir", str(tmp_path / "run"), *argv])
    assert_refused(code, err, flag)
    assert not (tmp_path / "run").exists()


def test_a_warm_up_as_long_as_the_run_is_a_note_not_an_error(capsys):
    mcfg, tcfg, _, _ = train.parse_args(["--preset", "tiny", "--warmup-epochs", "5", "--epochs", "2"])
    assert tcfg.warmup_epochs == 5
    assert "DSVAE-like" in capsys.readouterr().err


def test_presets_hold_only_valid_values_and_each_is_applied_whole(monkeypatch):
    rules = {**CONFIG_RULES, **train.TRAIN_RULES}
    for name, preset in train.PRESETS.items():
        assert all(rules[k].check(v) is None for k, v in preset.items() if k in rules), name
        mcfg, tcfg, _, _ = train.parse_args(["--preset", name])
        configs = {**vars(mcfg), **vars(tcfg)}
        assert tcfg.preset == name and all(configs[k] == v for k, v in preset.items()), name
    monkeypatch.setitem(train.PRESETS, "tiny", {**train.PRESETS["tiny"], "batch_size": 0})  # a bad value in a preset
    with pytest.raises(SPYLError, match="--batch-size"):
        train.parse_args(["--preset", "tiny"])


def test_the_cpu_preset_fits_its_prior_and_starts_from_pytorch_init_unless_told_otherwise():
    mcfg, tcfg, _, _ = train.parse_args(["--preset", "cpu"])
    assert mcfg.init == "torch" and tcfg.fit_prior and tcfg.warmup_epochs < tcfg.epochs
    # PyTorch's uniform(+-1/sqrt(512)), not the reference's N(0, 0.01^2)
    assert SPYL(mcfg).s_mean.weight.std().item() > 0.02
    mcfg, tcfg, _, _ = train.parse_args(["--preset", "cpu", "--init", "reference", "--no-fit-prior"])
    assert mcfg.init == "reference" and not tcfg.fit_prior
    assert SPYL(mcfg).s_mean.weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_time_series_and_speech_presets_train_in_fp32_even_on_a_cpu_with_bf16_units(monkeypatch):
    # the shipped figures must not depend on which machine trained them
    monkeypatch.setattr(utils, "cpu_has_bf16_units", lambda: True)
    cpu = torch.device("cpu")
    for name in ("etth1", "airquality", "physionet", "fsdd", "fsdd_200ms"):
        _, tcfg, _, _ = train.parse_args(["--dataset", name])
        assert tcfg.precision == "fp32" and utils.resolve_precision(tcfg.precision, cpu) is None, name
    _, tcfg, _, _ = train.parse_args(["--dataset", "etth1", "--precision", "bf16"])    # a flag still wins
    assert tcfg.precision == "bf16"
    _, tcfg, _, _ = train.parse_args(["--preset", "cpu"])                                # Sprites follows the CPU
    assert utils.resolve_precision(tcfg.precision, cpu) == torch.bfloat16


def test_help_shows_each_range_next_to_its_default(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    out = capsys.readouterr().out.replace("\n", " ")
    for text in ("default 128; an integer from 1 to 1000000", "default 0.5; a number from 0.0001 to 100.0",
                 "one of soft, semi, hard"):
        assert text in " ".join(out.split()), text


OTHER_FLAGS = [
    (swaps_experiments.main, "--repeats"), (swaps_experiments.main, "--seed"), (swaps_experiments.main, "--chars"),
    (judge.main, "--epochs"), (judge.main, "--batch-size"), (judge.main, "--lr"), (judge.main, "--chars"),
    (judge.main, "--dataset"),
    (fit_prior.main, "--steps"), (fit_prior.main, "--lr"), (fit_prior.main, "--batch-size"),
    (fit_prior.main, "--inputs"),
    (fit_prior.main, "--eval-every"), (fit_prior.main, "--patience"), (fit_prior.main, "--seed"),
    (bench.main, "--steps"), (timeseries_experiments.main, "--dataset"),
]


def _rule(main, flag, monkeypatch):
    """The Rule a script's flag is parsed with (its argparse `type`), read off the script's parser."""
    seen = {}

    def grab(parser, *args, **kw):
        seen["parser"] = parser
        raise KeyboardInterrupt  # stop the script right there
    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", grab)
        with pytest.raises(KeyboardInterrupt):
            main([])
    return next(a for a in seen["parser"]._actions if flag in a.option_strings).type


@pytest.mark.parametrize("main, flag", OTHER_FLAGS, ids=[f"{m.__module__}{f}" for m, f in OTHER_FLAGS])
def test_other_scripts_refuse_out_of_range_flags_in_one_line(tmp_path, monkeypatch, main, flag):
    rule = _rule(main, flag, monkeypatch)
    assert isinstance(rule, Rule), f"{flag} has no stated range"
    monkeypatch.chdir(tmp_path)  # whatever a script would write by default lands here

    @settings(max_examples=25, deadline=None)
    @given(outside(rule))
    def check(text):
        assert_refused(*run(main, [f"{flag}={text}"]), flag)
    check()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("field, value", [("s_dim", -1), ("tau", 0.0), ("negative_mode", "softest"), ("frames", 2.5),
                                          ("dsvae", "yes"), ("method", "vae"), ("anchor", "middle")])
def test_a_checkpoint_with_an_edited_config_is_refused_in_one_line(tmp_path, field, value):
    path = tmp_path / "m.pth"
    SPYL(tiny_config()).save(path, data="builtin")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"][field] = value
    torch.save(ckpt, path)
    with pytest.raises(SPYLError, match=f"{path}.*--{field.replace('_', '-')}"):
        SPYL.load(path)
    code, err = run(swaps_experiments.main, ["--weights", str(path), "--fig-dir", str(tmp_path / "fig")])
    assert_refused(code, err, f"--{field.replace('_', '-')}")
    assert not (tmp_path / "fig").exists()

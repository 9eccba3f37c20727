"""Fitting the prior alone: it lowers the validation KL, touches nothing else, and the script
writes a model and its log."""
import json

import numpy as np
import pytest
import torch

import fit_prior
import prior_fitting
from conftest import tiny_config
from dataloader import hold_out
from methods import build
from model import PRIOR_PREFIXES, SPYL
from utils import SPYLError


def posteriors(builtin_small):
    """A tiny untrained model and the d posteriors of its fitting and validation characters."""
    train, _ = builtin_small
    model = SPYL(tiny_config()).eval()
    fit_set, val_set = hold_out(train, fraction=0.25)
    return model, prior_fitting.encode_posteriors(model, fit_set, "cpu",
                                                  progress=False), prior_fitting.encode_posteriors(model, val_set,
                                                                                                   "cpu",
                                                                                                   progress=False)


@pytest.mark.parametrize("inputs", prior_fitting.INPUTS)
def test_fitting_lowers_the_validation_kl_and_touches_only_the_prior(builtin_small, inputs):
    model, fit_post, val_post = posteriors(builtin_small)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log = prior_fitting.fit_prior(model, fit_post, val_post, steps=150, lr=3e-3, batch_size=32, inputs=inputs,
                                  eval_every=25, patience=100, progress=False)
    assert [r["step"] for r in log] == [0, 25, 50, 75, 100, 125, 150]
    best = min(r["val_kl"] for r in log)
    assert best < 0.7 * log[0]["val_kl"]
    eps = torch.randn(val_post[0].shape, generator=torch.Generator().manual_seed(0))
    # the best prior is the one kept
    assert prior_fitting.validation_kl(model, *val_post, eps) == pytest.approx(best, rel=1e-6)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(PRIOR_PREFIXES) for k in changed)
    assert {k for k in before if k.startswith(PRIOR_PREFIXES)} == changed


def test_fitting_stops_when_validation_stops_improving(builtin_small):
    model, fit_post, val_post = posteriors(builtin_small)
    log = prior_fitting.fit_prior(model, fit_post, val_post, steps=2000, lr=0.5, batch_size=8, eval_every=5,
                                  patience=2, progress=False)
    assert log[-1]["step"] < 2000  # a learning rate this large stops improving at once


def test_prior_kl_is_the_models_own_kl_term(builtin_small):
    train, _ = builtin_small
    model = build(tiny_config(method="dsvae")).eval()
    x = train.batch(np.arange(16))
    torch.manual_seed(1)
    terms = model(x, contrastive=False)
    torch.manual_seed(1)
    s_mean, s_logvar, d_mean, d_logvar = model.encode(x)
    torch.randn_like(s_mean)  # the forward pass draws s first, then d
    assert prior_fitting.prior_kl(model, d_mean, d_logvar).item() == pytest.approx(terms["kl_d"].item(), rel=1e-5)


def test_script_writes_the_model_and_its_log(tmp_path, builtin_small):
    SPYL(tiny_config()).save(tmp_path / "m.pth", data="builtin")
    out = tmp_path / "fitted" / "m.pth"
    fit_prior.main(["--weights", str(tmp_path / "m.pth"), "--out", str(out), "--chars", "24", "--steps", "60",
                    "--eval-every", "20", "--batch-size", "32", "--lr", "3e-3", "--inputs", "sample,mean"])
    fitted, original = SPYL.load(out), SPYL.load(tmp_path / "m.pth")
    report = json.loads((tmp_path / "fitted" / "m.json").read_text())
    assert [(f["lr"], f["inputs"]) for f in report["fits"]] == [(3e-3, "sample"), (3e-3, "mean")]
    assert report["val_kl_after"] == min(f["val_kl_after"] for f in report["fits"]) < report["val_kl_before"]
    assert report["fit_sequences"] + report["val_sequences"] == len(builtin_small[0])
    assert not torch.equal(fitted.prior_mean.weight,
                           original.prior_mean.weight) and (tmp_path / "fitted" / "m.png").stat().st_size > 1000
    (tmp_path / "fitted" / "m.png").unlink()
    fit_prior.main(["--plot", str(tmp_path / "fitted" / "m.json")])  # the curves again, from the log alone, beside it
    assert (tmp_path / "fitted" / "m.png").stat().st_size > 1000
    # or named
    fit_prior.main(["--plot", str(tmp_path / "fitted" / "m.json"), "--figure", str(tmp_path / "fig" / "curves.png")])
    assert (tmp_path / "fig" / "curves.png").read_bytes() == (tmp_path / "fitted" / "m.png").read_bytes()
    assert torch.equal(fitted.s_mean.weight, original.s_mean.weight)


def test_script_refuses_to_overwrite_its_input(tmp_path):
    SPYL(tiny_config()).save(tmp_path / "m.pth", data="builtin")
    with pytest.raises(SPYLError, match="is the input model"):
        fit_prior.main(["--weights", str(tmp_path / "m.pth"), "--out", str(tmp_path / "m.pth")])

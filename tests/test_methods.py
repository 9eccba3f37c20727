"""The methods SPYL is compared with (methods/): what makes each that method, and that each
trains, saves, resumes and is refused like SPYL."""
import contextlib
import io
import json
import os

import numpy as np
import pytest
import torch

import methods
import swaps_experiments
import train
from conftest import SHARED, tiny_config
from methods.cdsvae import content_view, motion_view, nt_xent
from methods.fhvae import SEQ_VAR
from methods.s3vae import motion_targets, shuffle_steps
from model import CONFIG_RULES, SPYL
from utils import SPYLError, load_checkpoint, run_main

NAMES = list(methods.METHODS)
SERIES = os.path.join(SHARED, "timeseries")
N_TRAIN = 54  # sequences of the first 8 characters of the built-in set
FAST = ["--preset", "tiny", "--chars", "8", "--batch-size", "8", "--bank-factor", "1", "--n-negatives", "4",
        "--val-size", "16", "--log-every", "3", "--epochs", "2", "--warmup-epochs", "1", "--eval-every", "0"]


def model_of(name, **kw):
    return methods.build(tiny_config(method=name, **{**methods.defaults(name), **kw}))


def test_every_method_is_a_config_choice_and_has_a_title():
    assert set(CONFIG_RULES["method"].choices) == set(methods.METHODS) == set(methods.TITLES)
    assert all(issubclass(cls, SPYL) and cls.method == name for name, cls in methods.METHODS.items())


def test_a_config_of_another_method_is_refused_by_the_wrong_class():
    with pytest.raises(SPYLError, match="methods.build"):
        SPYL(tiny_config(method="dbse"))


@pytest.mark.parametrize("name", NAMES)
def test_the_api_answers_for_every_method(name, builtin_small):
    model = model_of(name, conv_width=8).eval()
    x = builtin_small[1].batch(np.arange(4))
    s_mean, s_logvar, d_mean, d_logvar = model.encode(x)
    assert s_mean.shape == s_logvar.shape == (4, 6) and d_mean.shape == d_logvar.shape == (4, 8, 4)
    assert model.decode(s_mean, d_mean).shape == x.shape
    assert model.sample_static(3).shape == (3, 6) and model.sample_dynamics(3, 5).shape == (3, 5, 4)
    ab, ba = model.swap(x[:2], x[2:])
    assert ab.shape == ba.shape == x[:2].shape
    assert torch.equal(model.encode(x)[0], s_mean)  # eval mode: the codes of a sequence are the same every time


@pytest.mark.parametrize("name", NAMES)
def test_every_methods_loss_goes_down_on_a_tiny_model(name, builtin_small):
    train_set = builtin_small[0]
    model = model_of(name, dataset_size=len(train_set))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    idx = np.arange(8)
    x, index = train_set.batch(idx), torch.as_tensor(idx)
    losses = []
    for _ in range(20):
        terms = model(x, contrastive=True, index=index)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(terms["loss"].item())
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), losses


# ---- what makes each method that method ----------------------------------------------

def test_dbse_static_code_depends_on_its_anchor_step_alone(builtin_small):
    model = model_of("dbse", init="torch").eval()
    x = builtin_small[1].batch(np.arange(4))
    other = builtin_small[1].batch(np.arange(4, 8))
    s = model.encode(x)[0]
    later_changed = torch.cat([x[:, :1], other[:, 1:]], 1)
    first_changed = torch.cat([other[:, :1], x[:, 1:]], 1)
    moved = lambda y: (model.encode(y)[0] - s).abs().amax(1)  # B: how far each sequence's s moved
    # the rest of the sequence moves it by the conv's rounding only; a new first step, every sequence's
    assert moved(later_changed).max() < 1e-6 and moved(first_changed).min() > 1e-4


def test_dbse_loudest_anchor_reads_the_loudest_observed_step():
    model = model_of("dbse", frame_net="mlp", x_dim=3, frames=5, anchor="loudest").eval()
    x = torch.zeros(2, 5, 3)
    x[0, 3], x[1, 1], x[1, 4] = 2.0, 1.0, float("nan")  # a missing step is never the anchor
    assert model.anchor_step(x).tolist() == [3, 1]
    s = model.encode(x)[0]
    y = x.clone()
    y[:, 0] = -1.0                                        # quieter steps changed: s is the same
    assert torch.equal(model.encode(y)[0], s)


def test_cdsvae_content_view_keeps_each_step_of_its_source_and_breaks_the_order(builtin_small):
    x = builtin_small[0].batch(np.arange(32))             # B x T x 3 x 64 x 64
    v = content_view(x)
    flat = lambda t: t.flatten(2)
    for src, view in zip(flat(x), flat(v)):               # the same frames: what is static is kept
        assert torch.equal(src.sort(0).values, view.sort(0).values)
    assert (v != x).flatten(1).any(1).float().mean() > 0.9  # the order, the motion, is not


def test_cdsvae_motion_view_is_one_map_of_every_frame(builtin_small):
    torch.manual_seed(3)
    x = builtin_small[0].batch(np.arange(32))
    v = motion_view(x)
    changed = 0
    for src, view in zip(x, v):
        colours = src.permute(0, 2, 3, 1).reshape(-1, 3)  # every pixel of every frame
        mapped = view.permute(0, 2, 3, 1).reshape(-1, 3)
        _, group = torch.unique(colours, dim=0, return_inverse=True)
        first = torch.zeros(int(group.max()) + 1, dtype=torch.long).scatter_(0, group.flip(0),
                                                                              torch.arange(len(group)).flip(0))
        # a pixel of a given colour maps to one colour whatever the frame: where and when things
        # change, the action, is kept
        assert torch.allclose(mapped, mapped[first[group]], atol=1e-6)
        changed += not torch.allclose(src, view)
    assert changed > 16                                   # and the appearance changes in most clips


def test_cdsvae_motion_view_of_vectors_keeps_the_signs_of_the_changes():
    x = torch.randn(8, 6, 5)
    x[0, 2, 1] = float("nan")
    v = motion_view(x)
    assert torch.equal(torch.isnan(v), torch.isnan(x))
    dx, dv = x.diff(dim=1), v.diff(dim=1)
    ok = ~torch.isnan(dx)
    assert torch.equal(torch.sign(dx[ok]), torch.sign(dv[ok]))
    assert (torch.nan_to_num(v - x).abs().amax((1, 2)) > 0.01).all()   # the levels, what is static, moved


def test_nt_xent_counts_the_pair_against_every_other_vector_of_both_views():
    a = torch.eye(8) * 3.0                                 # orthogonal: each row's 14 negatives have cosine 0
    assert nt_xent(a, a, 0.5).item() == pytest.approx(-np.log(np.exp(2) / (np.exp(2) + 14)), rel=1e-5)
    b = torch.randn(16, 8)
    assert nt_xent(b, b, 0.5) < nt_xent(b, b[torch.randperm(16)], 0.5)


def test_s3vae_triplet_positive_is_a_shuffle_of_the_anchor(builtin_small):
    x = builtin_small[0].batch(np.arange(16))
    p = shuffle_steps(x)
    for src, pos in zip(x.flatten(2), p.flatten(2)):
        assert torch.equal(src.sort(0).values, pos.sort(0).values)
    assert (p != x).flatten(1).any(1).all()


def test_s3vae_motion_targets_mark_the_moving_cell():
    x = torch.zeros(1, 3, 3, 48, 48)
    x[0, 1, :, 0:8, 40:48] = 1.0                          # a block appears in the top-right cell at step 2
    target, mask = motion_targets(x)
    assert target.shape == mask.shape == (1, 2, 9)
    assert target[0, 0].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0] and target[0, 1].tolist() == target[0, 0].tolist()
    v = torch.tensor([[[0.0, 1.0], [1.0, float("nan")], [0.5, 2.0]]])   # vectors: signs, NaN masked
    target, mask = motion_targets(v)
    assert target.tolist() == [[[1.0, 0.0], [0.0, 0.0]]] and mask.tolist() == [[[1.0, 0.0], [1.0, 0.0]]]


def test_fhvae_unseen_sequence_mean_is_the_closed_form_estimate():
    model = model_of("fhvae", frame_net="mlp", x_dim=3, frames=4).eval()
    x = torch.randn(2, 4, 3)
    x[1, 3] = float("nan")                                # an unobserved step does not count
    z_mean, _ = model._seq_posterior(model._features(x)[0])
    s_mean, s_logvar, _, _ = model.encode(x)
    assert torch.allclose(s_mean[0], z_mean[0].sum(0) / (4 + SEQ_VAR), atol=1e-6)
    assert torch.allclose(s_mean[1], z_mean[1, :3].sum(0) / (3 + SEQ_VAR), atol=1e-6)
    assert torch.allclose(s_logvar[1], torch.log(torch.tensor(SEQ_VAR / (3 + SEQ_VAR))).expand(6))


def test_fhvae_discriminative_term_reads_the_batch_rows(builtin_small):
    model = model_of("fhvae", dataset_size=10)
    x = builtin_small[0].batch(np.arange(4))
    assert set(model(x, index=torch.arange(4))) >= {"disc", "prior_mu"}
    assert "disc" not in model(x)                          # held-out data: no row of the table
    torch.manual_seed(0)
    right = model(x, index=torch.arange(4))["disc"]
    with torch.no_grad():
        model.mu[:4] = model._seq_posterior(model._features(x)[0])[0].mean(1)  # rows at the sequences' codes
    torch.manual_seed(0)
    assert model(x, index=torch.arange(4))["disc"] < right


def test_fhvae_estimate_table_sets_the_batch_rows_to_their_optimum(builtin_small):
    model = model_of("fhvae", dataset_size=10, mu_table="estimate")
    x, before = builtin_small[0].batch(np.arange(4)), model.mu.detach().clone()
    model(x, index=torch.arange(4))["loss"].backward()
    g, steps = model._features(x)
    rows = model.sequence_mean(model._seq_posterior(g)[0], steps)[0]
    assert torch.allclose(model.mu[:4], rows, atol=1e-6) and torch.equal(model.mu[4:], before[4:])
    assert model.mu.grad is None                                        # set, never trained
    learned = model_of("fhvae", dataset_size=10)
    learned.load_state_dict(model.state_dict())
    elbo_terms = lambda m: (lambda t: (t["kl_s"] + t["prior_mu"]).item())(m(x, index=torch.arange(4)))
    at_rows = elbo_terms(learned)
    with torch.no_grad():
        learned.mu[:4] += 0.05 * torch.randn_like(rows)
    assert elbo_terms(learned) > at_rows                                 # the rows minimise KL(z_seq) - log p(mu)


def test_fhvae_table_has_one_row_per_training_sequence_and_no_prior_to_fit(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        train.main(FAST + ["--method", "fhvae", "--run-dir", str(tmp_path / "r"), "--epochs", "1", "--fit-prior"])
    model = SPYL.load(tmp_path / "r" / "model.pth")
    assert type(model).__name__ == "FHVAE" and model.mu.shape == (N_TRAIN, model.config.s_dim) == (N_TRAIN, 16)
    assert "no learned prior" in err.getvalue()
    with contextlib.redirect_stderr(io.StringIO()):
        train.main(FAST + ["--method", "fhvae", "--mu-table", "estimate", "--run-dir", str(tmp_path / "e"),
                           "--epochs", "1", "--out", str(tmp_path / "e.pth")])
    model = SPYL.load(tmp_path / "e.pth")
    assert model.config.mu_table == "estimate"
    norms = model.mu.norm(dim=1)          # N(0, I) rows of 16: about 4; the estimates of a new encoder: near 0
    assert (norms < 1).sum() == 6 * 8 and (norms > 2).sum() == N_TRAIN - 6 * 8   # the epoch's 6 full batches set


def test_a_released_fhvae_file_leaves_out_its_table_and_reads_the_same(tmp_path, builtin_small):
    model = model_of("fhvae", dataset_size=500).eval()
    model.save(tmp_path / "full.pth", data="builtin", half=True)
    ckpt = torch.load(tmp_path / "full.pth", weights_only=True)
    assert "mu" not in ckpt["model"] and ckpt["left_out"] == ["mu"]
    loaded = SPYL.load(tmp_path / "full.pth")
    assert loaded.left_out == ("mu",)
    model.save(tmp_path / "train.pth", data="builtin")     # full precision: every weight, for training on
    assert "mu" in torch.load(tmp_path / "train.pth", weights_only=True)["model"]
    x = builtin_small[1].batch(np.arange(3))
    for a, b in zip(model.half().float().encode(x), loaded.encode(x)):   # fp16 weights: the same codes
        assert torch.equal(a, b)
    ckpt["model"].pop("s_mean.weight")                      # only what training alone reads may be missing
    torch.save(ckpt, tmp_path / "cut.pth")
    with pytest.raises(SPYLError, match=r"missing \['s_mean.weight'\]"):
        SPYL.load(tmp_path / "cut.pth")
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SPYLError, match="a released file, without mu"):
        train.main(FAST + ["--method", "fhvae", "--run-dir", str(tmp_path / "r"), "--init-from",
                           str(tmp_path / "full.pth")])


# ---- checkpoints and train.py -------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trips_as_the_methods_class(name, tmp_path, builtin_small):
    model = model_of(name).eval()
    model.save(tmp_path / "m.pth", data="builtin")
    loaded = SPYL.load(tmp_path / "m.pth")
    assert type(loaded) is type(model) and loaded.config == model.config
    x = builtin_small[1].batch(np.arange(3))
    for a, b in zip(model.encode(x), loaded.encode(x)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name, field, value", [("dsvae", "w_kl_s", -1.0), ("s3vae", "w_triplet", -1.0),
                                                ("cdsvae", "w_con_s", float("nan")), ("dbse", "anchor", "middle"),
                                                ("fhvae", "w_disc", -1.0)])
def test_an_edited_checkpoint_is_refused_in_one_line(name, field, value, tmp_path):
    path = tmp_path / "m.pth"
    model_of(name).save(path, data="builtin")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"][field] = value
    torch.save(ckpt, path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as e:
        run_main(swaps_experiments.main, ["--weights", str(path), "--fig-dir", str(tmp_path / "fig")])
    lines = err.getvalue().strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1 and f"--{field.replace('_', '-')}" in lines[0], err.getvalue()


# SPYL's is test_train.py's; DSVAE draws nothing SPYL does not. Each of these draws its own
# random numbers in a step (views, shuffles, the anchor's noise) or reads the batch's rows.
@pytest.mark.parametrize("name", ["s3vae", "cdsvae", "dbse", "fhvae"])
def test_resume_is_exact_for_every_method(name, tmp_path):
    straight, half = tmp_path / "straight", tmp_path / "half"
    with contextlib.redirect_stderr(io.StringIO()):
        train.main(FAST + ["--method", name, "--run-dir", str(straight)])
        train.main(FAST + ["--method", name, "--run-dir", str(half), "--epochs", "1"])
        train.main(FAST + ["--method", name, "--run-dir", str(half), "--resume"])
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(half / "checkpoint.pt")
    assert a["config"]["method"] == name and a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    log = [json.loads(line)["train"] for line in (straight / "log.jsonl").read_text().splitlines()]
    assert log[0].keys() == log[1].keys()                 # no warm-up phase: one set of terms throughout


def test_method_defaults_sit_between_preset_and_flags():
    mcfg = train.parse_args(["--preset", "tiny", "--method", "cdsvae"])[0]
    assert (mcfg.method, mcfg.w_con_s, mcfg.w_con_d) == ("cdsvae", 10.0, 10.0)
    assert train.parse_args(["--preset", "tiny", "--method", "cdsvae", "--w-con-s", "3"])[0].w_con_s == 3.0
    assert train.parse_args(["--preset", "tiny", "--method", "s3vae"])[0].w_mi == 0.01
    assert train.parse_args(["--preset", "tiny", "--dsvae"])[0].method == "dsvae"
    assert train.parse_args(["--preset", "fsdd_200ms", "--method", "dbse"])[0].anchor == "loudest"


@pytest.mark.parametrize("argv, match", [(["--method", "vae"], "--method must be one of"),
                                         (["--dsvae", "--method", "dbse"], "--dsvae means --method dsvae")])
def test_bad_method_flags_are_refused_in_one_line(argv, match):
    with pytest.raises(SPYLError, match=match):
        train.parse_args(["--preset", "tiny", *argv])


@pytest.mark.skipif(not os.path.isdir(SERIES), reason="../shared/timeseries not present")
@pytest.mark.parametrize("name", NAMES)
def test_every_method_trains_on_a_time_series_with_its_preset(name, tmp_path):
    with contextlib.redirect_stderr(io.StringIO()):
        train.main(["--dataset", "etth1", "--data-root", SERIES, "--epochs", "2", "--method", name, "--run-dir",
                    str(tmp_path / "r"), "--out", str(tmp_path / "m.pth")])
    model = SPYL.load(tmp_path / "m.pth")
    assert model.method == name and model.config.frame_net == "mlp" and model.config.x_dim == 144
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(np.isfinite(r["train"]["loss"]) and np.isfinite(r["val_loss"]) for r in log)

"""The model: shapes, loss terms, the maths against references, checkpoints."""
import math

import pytest
import torch
import torch.nn as nn
from torch.distributions import Normal, kl_divergence

from conftest import tiny_config
from methods import build
from model import (SPYL, SPYLConfig, info_nce, kl_matrix, kl_normal, kl_standard_normal, log_density,
                   mutual_information, select_negatives)
from utils import SPYLError

B, T = 5, 8


def test_public_methods_shapes():
    cfg = tiny_config()
    m = SPYL(cfg).eval()
    x = torch.rand(B, T, 3, 64, 64)
    s_mean, s_logvar, d_mean, d_logvar = m.encode(x)
    assert s_mean.shape == s_logvar.shape == (B, cfg.s_dim)
    assert d_mean.shape == d_logvar.shape == (B, T, cfg.d_dim)
    y = m.decode(s_mean, d_mean)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert m.sample_static(3).shape == (3, cfg.s_dim)
    assert m.sample_dynamics(3, 6).shape == (3, 6, cfg.d_dim)
    ab, ba = m.swap(x[:2], x[2:4])
    assert ab.shape == ba.shape == (2, T, 3, 64, 64)


def test_loss_terms_finite_and_signed():
    m = SPYL(tiny_config())
    terms = m(torch.rand(B, T, 3, 64, 64), contrastive=True)
    assert set(terms) == {"recon", "kl_s", "kl_d", "mi", "nce_s", "nce_d", "loss"}
    for k, v in terms.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    for k in ("recon", "kl_s", "kl_d", "mi"):
        assert terms[k] >= 0, k
    # InfoNCE over 1 + K candidates: at random init the positive is no closer than a negative, so the
    # loss is near ln(1 + K), the loss of a uniform guess (measured over seeds: 0.7 to 1.15 times it)
    for k in ("nce_s", "nce_d"):
        assert 0.5 * math.log(1 + 8) < terms[k] < 1.5 * math.log(1 + 8), k


def test_dsvae_baseline_and_warmup_drop_the_right_terms():
    x = torch.rand(B, T, 3, 64, 64)
    assert set(SPYL(tiny_config())(x, contrastive=False)) == {"recon", "kl_s", "kl_d", "mi", "loss"}
    assert set(build(tiny_config(method="dsvae"))(x, contrastive=True)) == {"recon", "kl_s", "kl_d", "loss"}


def test_total_is_the_weighted_sum():
    cfg = tiny_config(w_recon=2.0, w_kl_s=3.0, w_kl_d=0.5, w_mi=1.5, w_con_s=0.7, w_con_d=0.3)
    t = SPYL(cfg)(torch.rand(B, T, 3, 64, 64), contrastive=True)
    want = 2 * t["recon"] + 3 * t["kl_s"] + 0.5 * t["kl_d"] + 1.5 * t["mi"] + 0.7 * t["nce_s"] + 0.3 * t["nce_d"]
    assert torch.allclose(t["loss"], want, rtol=1e-5)


def test_kls_match_torch_distributions():
    mq, lq, mp, lp = torch.randn(4, 7), torch.randn(4, 7), torch.randn(4, 7), torch.randn(4, 7)
    q, p = Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())
    assert torch.allclose(kl_normal(mq, lq, mp, lp), kl_divergence(q, p), atol=1e-5)
    assert torch.allclose(kl_standard_normal(mq, lq), kl_divergence(q, Normal(0.0, 1.0)), atol=1e-5)
    assert torch.allclose(log_density(mp, mq, lq), q.log_prob(mp), atol=1e-5)


def test_kl_matrix_matches_pairwise():
    ma, la, mb, lb = torch.randn(3, 5), torch.randn(3, 5), torch.randn(6, 5), torch.randn(6, 5)
    pairwise = kl_normal(ma[:, None], la[:, None], mb[None], lb[None]).sum(-1)
    assert torch.allclose(kl_matrix(ma, la, mb, lb), pairwise, atol=1e-4)


def test_info_nce_hand_computed():
    # anchor (1, 0); positive at 0 degrees, negatives at 90 and 180 degrees; tau = 0.5
    a, p = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    bank, idx = torch.tensor([[5.0, 5.0], [0.0, 3.0], [-1.0, 0.0]]), torch.tensor([[1, 2]])
    want = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-2)))
    assert info_nce(a, p, bank, idx, 0.5).item() == pytest.approx(want, rel=1e-6)


def test_negatives_normalised_before_the_gather_are_the_same_numbers():
    torch.manual_seed(0)
    a, p, bank = torch.randn(6, 5), torch.randn(6, 5), torch.randn(20, 5) * 3
    idx = torch.randint(0, 20, (6, 7))
    an, pn, neg = (torch.nn.functional.normalize(v, dim=-1) for v in (a, p, bank[idx]))  # gathered first, as before
    logits = torch.cat([(an * pn).sum(-1, keepdim=True), torch.einsum("bd,bkd->bk", an, neg)], 1) / 0.5
    assert torch.equal(info_nce(a, p, bank, idx, 0.5),
                       torch.nn.functional.cross_entropy(logits, torch.zeros(6, dtype=torch.long)))


def test_negatives_are_ranked_by_kl():
    anchor_mean, anchor_logvar = torch.zeros(1, 2), torch.zeros(1, 2)
    bank_mean = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [5.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
    bank_logvar = torch.zeros(6, 2)  # KL grows with the distance: ranks 3 > 5 > 1 > 4 > 2 > 0
    pick = lambda mode, n=2: select_negatives(anchor_mean, anchor_logvar, bank_mean, bank_logvar, n, mode)
    assert sorted(pick("soft")[0].tolist()) == [3, 5]             # ranks 0, 1
    assert pick("semi")[0].tolist() == [1, 4]                     # ranks M//3 = 2 and 3, as the reference takes them
    assert pick("semi", 10)[0].tolist() == [1, 4, 2, 0]           # the bank ends first: fewer
    for seed in range(20):                                        # hard: at random among ranks 0 .. 2 * (M//3) - 1
        torch.manual_seed(seed)
        got = pick("hard")[0].tolist()
        assert len(set(got)) == 2 and set(got) <= {3, 5, 1, 4}
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        seen |= set(pick("hard")[0].tolist())
    # every one of the pool is drawn sometimes, the rest never
    assert seen == {3, 5, 1, 4}


def test_hard_negatives_share_one_permutation_across_the_batch():
    torch.manual_seed(0)
    anchors = torch.randn(5, 3)                                   # different anchors rank the bank differently
    bank = torch.randn(30, 3)
    kl = kl_matrix(anchors, torch.zeros(5, 3), bank, torch.zeros(30, 3))
    order = kl.argsort(dim=1, descending=True)
    torch.manual_seed(7)
    idx = select_negatives(anchors, torch.zeros(5, 3), bank, torch.zeros(30, 3), 4, "hard")
    ranks = [[order[a].tolist().index(j) for j in idx[a].tolist()] for a in range(5)]
    # the same ranks for every anchor, within 2 * (30 // 3)
    assert all(r == ranks[0] for r in ranks) and max(ranks[0]) < 20


def test_mutual_information_matches_a_loop():
    torch.manual_seed(1)
    Bm, Tm, N = 4, 3, 50
    s_mean, s_logvar = torch.randn(Bm, 3), torch.randn(Bm, 3) * 0.3
    d_mean, d_logvar = torch.randn(Bm, Tm, 2), torch.randn(Bm, Tm, 2) * 0.3
    s, d = s_mean + 0.1 * torch.randn_like(s_mean), d_mean + 0.1 * torch.randn_like(d_mean)
    log_bn = math.log(Bm * N)
    vals = []
    for t in range(Tm):
        for i in range(Bm):
            ls = torch.stack([Normal(s_mean[j], (0.5 * s_logvar[j]).exp()).log_prob(s[i]).sum() for j in range(Bm)])
            ld = torch.stack([Normal(d_mean[j, t],
                                     (0.5 * d_logvar[j, t]).exp()).log_prob(d[i, t]).sum() for j in range(Bm)])
            mi = (torch.logsumexp(ls + ld,
                                  0) - log_bn) - (torch.logsumexp(ls, 0) - log_bn) - (torch.logsumexp(ld, 0) - log_bn)
            vals.append(mi.clamp(min=0))
    want = torch.stack(vals).mean()
    got = mutual_information(s, s_mean, s_logvar, d, d_mean, d_logvar, N)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_reference_mi_density_has_kernels_of_std_sigma_squared():
    torch.manual_seed(2)
    s_mean, s_logvar = torch.randn(4, 3), torch.randn(4, 3) * 0.5
    d_mean, d_logvar = torch.randn(4, 2, 2), torch.randn(4, 2, 2) * 0.5
    s, d = s_mean + 0.3 * torch.randn_like(s_mean), d_mean + 0.3 * torch.randn_like(d_mean)
    ref = mutual_information(s, s_mean, s_logvar, d, d_mean, d_logvar, 50, "reference")
    # the exact density with variances (sigma^2)^2, i.e. log-variances doubled
    assert ref.item() == pytest.approx(mutual_information(s, s_mean, 2 * s_logvar, d, d_mean, 2 * d_logvar,
                                                          50).item(), rel=1e-6)
    assert ref.item() != pytest.approx(mutual_information(s, s_mean, s_logvar, d, d_mean, d_logvar, 50).item(),
                                       rel=1e-3)
    m = SPYL(tiny_config(mi_density="reference", init="torch"))  # the reference init starts every log-variance near 0,
    torch.manual_seed(0)                                          # where the two densities agree
    a = m(torch.rand(3, T, 3, 64, 64), contrastive=False)["mi"]
    m.config.mi_density = "exact"
    torch.manual_seed(0)
    assert a.item() != pytest.approx(m(torch.rand(3, T, 3, 64, 64), contrastive=False)["mi"].item(), rel=1e-4)


def test_reference_init():
    torch.manual_seed(0)
    m = SPYL(tiny_config(conv_width=16, hidden=64))  # init "reference" is the default
    convs_and_linears = [mod for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    for mod in convs_and_linears:
        assert mod.weight.std().item() == pytest.approx(0.01, rel=0.3) and abs(mod.weight.mean().item()) < 0.005
        assert mod.bias is None or not mod.bias.any()
    torch.manual_seed(0)
    t = SPYL(tiny_config(conv_width=16, hidden=64, init="torch"))
    assert t.s_mean.weight.std().item() > 0.02  # PyTorch's default: uniform(+-1/sqrt(fan_in)), about 0.025 here
    for a, b in zip(m.modules(), t.modules()):    # the layers the reference leaves alone are the same draws
        if isinstance(a, (nn.ConvTranspose2d, nn.LSTM, nn.RNN)):
            assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(SPYLError, match="--init"):
        tiny_config(init="xavier")
    with pytest.raises(SPYLError, match="--mi-density"):
        tiny_config(mi_density="approx")


def test_logvar_is_bounded():
    m = SPYL(tiny_config(logvar_limit=3.0)).eval()
    with torch.no_grad():
        m.s_logvar.bias.fill_(1e4)
        m.d_logvar.bias.fill_(-1e4)
    _, s_logvar, _, d_logvar = m.encode(torch.rand(2, T, 3, 64, 64))
    assert s_logvar.max() <= 3.0 and d_logvar.min() >= -3.0
    assert torch.isfinite(m(torch.rand(2, T, 3, 64, 64))["loss"])


def test_mlp_frame_net_for_vector_sequences():
    cfg = tiny_config(frame_net="mlp", x_dim=13, frames=20)
    m = SPYL(cfg)
    x = torch.randn(B, 20, 13)
    assert m.decode(*m.encode(x)[::2]).shape == x.shape
    terms = m(x)
    terms["loss"].backward()
    assert all(p.grad is not None for p in m.parameters())


def test_custom_frame_nets_are_used():
    cfg = tiny_config(frame_net="mlp", x_dim=6)
    enc, dec = nn.Sequential(nn.Linear(6, cfg.g_dim)), nn.Sequential(nn.Linear(cfg.s_dim + cfg.d_dim, 6))
    m = SPYL(cfg, frame_encoder=enc, frame_decoder=dec)
    assert m.frame_encoder is enc and m.frame_decoder is dec
    assert m(torch.randn(3, 4, 6))["loss"].isfinite()


def test_bad_config_values():
    for kw in ({"frame_net": "rnn"}, {"negative_mode": "medium"}, {"image_size": 48}, {"frame_net": "mlp"}):
        with pytest.raises(SPYLError):
            SPYLConfig(**kw)


def test_few_steps_lower_the_loss(builtin_small):
    train, _ = builtin_small
    m = SPYL(tiny_config(conv_width=8, dataset_size=len(train)))
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    x = train.batch(torch.arange(16).numpy())
    losses = []
    for _ in range(25):
        loss = m(x, contrastive=True)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_fast_step_computes_what_the_plain_step_computes():
    # train.py's step against the straightforward one. The negative bank without autograd
    # must change nothing; channels-last convolutions only the rounding.
    cfg = tiny_config(conv_width=8)
    x = torch.rand(6, cfg.frames, 3, 64, 64)
    # frames channels-last, as the loader gives them
    x_cl = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)

    def step(plain_bank, channels_last):
        torch.manual_seed(0)
        model = SPYL(cfg)
        model.plain_bank = plain_bank
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        terms = model(x_cl if channels_last else x, contrastive=True)
        terms["loss"].backward()
        return terms, {n: p.grad for n, p in model.named_parameters()}

    def assert_same(a, b, grad_tol):
        assert set(a[0]) == set(b[0]) and "nce_s" in a[0]
        for k in a[0]:
            torch.testing.assert_close(a[0][k], b[0][k], rtol=1e-5, atol=1e-5)
        for n, g in a[1].items():  # whole gradients: single elements can cancel to near zero
            assert (b[1][n] - g).norm() <= grad_tol * g.norm() + 1e-6, n

    plain = step(plain_bank=True, channels_last=False)
    assert_same(plain, step(plain_bank=False, channels_last=False), grad_tol=1e-5)
    assert_same(plain, step(plain_bank=False, channels_last=True), grad_tol=1e-2)


def test_missing_values_count_nowhere_in_the_reconstruction():
    torch.manual_seed(0)
    m = SPYL(tiny_config(frame_net="mlp", x_dim=6, frames=5)).eval()
    x = torch.randn(3, 5, 6)
    holes = torch.rand(3, 5, 6) < 0.3
    x_missing = x.masked_fill(holes, float("nan"))
    with torch.no_grad():
        x_hat = m.decode(*m.encode(x_missing)[::2])                    # the encoder sees zeros where NaN
        assert torch.equal(x_hat, m.decode(*m.encode(x.masked_fill(holes, 0.0))[::2]))
        torch.manual_seed(1)
        recon = m(x_missing, contrastive=False)["recon"]
        torch.manual_seed(1)
        s_mean, s_logvar, d_mean, d_logvar = m.encode(x_missing)
        s = s_mean + torch.randn_like(s_mean) * (0.5 * s_logvar).exp()
        d = d_mean + torch.randn_like(d_mean) * (0.5 * d_logvar).exp()
        want = ((m.decode(s, d) - x).pow(2) * ~holes).sum() / 3       # observed values only
    assert torch.isfinite(recon) and recon.item() == pytest.approx(want.item(), rel=1e-5)
    with torch.no_grad():
        torch.manual_seed(1)
        full = m(x, contrastive=False)["recon"]
    assert full > recon                                                # the holes' errors were left out


def test_fused_prior_chain_is_the_lstm_chain_to_rounding():
    torch.manual_seed(0)
    model = SPYL(tiny_config(hidden=12, d_dim=5))
    out = {}
    for fused in (False, True):
        model.fused_prior = fused
        model.zero_grad()
        torch.manual_seed(3)                                         # the same draws at every step
        mean, logvar = model.sample_prior(4, 6)
        (mean.pow(2).sum() + logvar.sin().sum()).backward()
        out[fused] = mean, logvar, {n: p.grad.clone() for n, p in model.named_parameters() if n.startswith("prior")}
    assert out[True][0].shape == (4, 6, 5)
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[True][1], out[False][1], rtol=1e-5, atol=1e-6)
    assert set(out[True][2]) == set(out[False][2]) and len(out[True][2]) == 12   # both LSTM layers and both heads
    for n, g in out[False][2].items():
        torch.testing.assert_close(out[True][2][n], g, rtol=1e-4, atol=1e-6)

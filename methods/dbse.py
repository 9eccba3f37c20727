"""DBSE (Berman, Naiman, Azencot, "Sequential Disentanglement by Extracting Static Information
From A Single Sequence Element", ICML 2024): the static code is read from one step, the anchor,
and the dynamic codes from every step's features minus the anchor's, so what is constant over the
sequence has nowhere to go but s. No MI penalty, no contrastive term, no augmentation.

Reference code: azencot-group/DBSE @ac0c5f6.
- video/model/dbse_model.py:66-95: s from the first frame's conv feature (Linear, tanh, then the
  mean and log-variance heads); d_t from (feature_t - feature_1), the first step of which is
  replaced by N(0, I) noise, through a bi-LSTM and the heads; the learned LSTM prior on d_t.
- dbse_model.py:170-178 and video/sprites/run_sprites.py:45-67: the loss, 5 x the sequence's squared error + 1 x
  the first frame's, decoded again from [d_1, s] (the same inputs, so the same numbers as the
  sequence's first frame) + KL(s) + KL(d). Here w_anchor weighs the anchor step's error again,
  2.0 by default: the reference's 1 : 5 against the backbone's reconstruction weight of 10.
- audio/model/dbse.py: on speech the anchor is the chunk's first step (a comment allows another).

Where this departs, and why:
- The anchor: the first step ("first", the reference's) by default; "loudest" (the step of
  largest mean value, missing steps never chosen) for speech, where the first step of a segment
  is often the silence before the word (the speech presets set it).
- d's posterior is the backbone's (bi-LSTM, then the one-layer RNN and heads) over the
  differences, where the reference has a two-layer bi-LSTM: every method shares these parts.
- The noise at the anchor's step is drawn in training only; encode() in eval mode puts its mean,
  0, there, so a model's codes of a sequence are the same every time it is asked.
- The shared ELBO weights are the backbone's (the reference's per-set weights of the time series,
  in time_series/model/dbse.py, are not carried over): the same for every method.
"""
import torch
import torch.nn as nn

from model import SPYL, reference_init, squared_error


class DBSE(SPYL):
    """model.SPYL with DBSE's encoder (s from the anchor step alone, d from differences to it)
    and its extra weight on the anchor step's reconstruction."""
    method = "dbse"
    warms_up = False
    defaults = {}

    def __init__(self, config=None, frame_encoder=None, frame_decoder=None):
        """The backbone, with s read from the anchor step's feature: g_dim -> hidden (tanh) -> s heads."""
        super().__init__(config, frame_encoder, frame_decoder)
        cfg = self.config
        self.static_net = nn.Sequential(nn.Linear(cfg.g_dim, cfg.hidden), nn.Tanh())
        self.s_mean = nn.Linear(cfg.hidden, cfg.s_dim)
        self.s_logvar = nn.Linear(cfg.hidden, cfg.s_dim)
        if cfg.init == "reference":
            for m in (self.static_net, self.s_mean, self.s_logvar):
                m.apply(reference_init)

    def anchor_step(self, x):
        """B: the index of each sequence's anchor step: 0, or the step of largest mean value
        among those observed (config.anchor "loudest")."""
        if self.config.anchor == "first":
            return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        level = torch.nan_to_num(x.flatten(2), nan=float("-inf")).mean(2)          # B x T; -inf where missing
        return level.argmax(1)

    def encode(self, x):
        """x -> (s_mean, s_logvar) B x s_dim, from the anchor step alone; (d_mean, d_logvar) B x T x d_dim,
        from every step's feature minus the anchor's."""
        B, T = x.shape[:2]
        g = self.frame_encoder(torch.nan_to_num(x).flatten(0, 1)).view(B, T, -1)    # B x T x g_dim
        a = self.anchor_step(x)
        at = torch.arange(T, device=x.device) == a[:, None]                        # B x T, one True per row
        g_anchor = g[torch.arange(B, device=x.device), a]                          # B x g_dim
        h_s = self.static_net(g_anchor)
        # The anchor's own difference is 0 whatever the sequence; the reference puts noise there.
        fill = torch.randn_like(g_anchor) if self.training else torch.zeros_like(g_anchor)
        diff = torch.where(at[..., None], fill[:, None], g - g_anchor[:, None])    # B x T x g_dim
        h, _ = self.bilstm(diff)
        h_d, _ = self.d_rnn(h)
        return (self.s_mean(h_s), self._bound(self.s_logvar(h_s)),
                self.d_mean(h_d), self._bound(self.d_logvar(h_d)))

    def method_terms(self, x, z, contrastive, index):
        """{"anchor": (w_anchor, the anchor step's summed squared error / B)} (observed values only)."""
        rows = torch.arange(x.shape[0], device=x.device), self.anchor_step(x)
        err = squared_error(z.x_hat, x)[rows]                                       # B x *step_shape
        return {"anchor": (self.config.w_anchor, err.sum() / x.shape[0])}

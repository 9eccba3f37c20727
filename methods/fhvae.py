"""FHVAE (Hsu, Zhang, Glass, "Unsupervised Learning of Disentangled and Interpretable
Representations from Sequential Data", NeurIPS 2017): a sequence-level latent z_seq, drawn around
a mean mu_i that training sequence i keeps in a table, and a segment-level latent z_seg; a
discriminative term makes z_seq tell the sequences apart.

Reference code: wnhsu/FactorizedHierarchicalVAE @7e3e23a (TensorFlow 1; its z1/mu1 are the
sequence latent, the paper's z2). base_fhvae.py:155-218, 294-304: mu_i ~ N(0, I), one trainable
row per training sequence; z_seq ~ N(mu_i, 0.5^2 I); z_seg ~ N(0, I); per segment, the ELBO with
KL(q(z_seq | x) || N(mu_i, 0.25 I)) and KL(q(z_seg | x, z_seq) || N(0, I)), plus log p(mu_i) and
alpha x log q(i | z_seq), a softmax over every training sequence with logits
-||E[z_seq] - mu_j||^2 / (2 x 0.25), alpha = 10. fhvae_runner.py:473-499: for a sequence not in
the table, mu* = sum_n E[z_seq^(n)] / (N + 0.25) over its N segments.

The mapping onto this backbone: a sequence of the data set is FHVAE's sequence, each of its steps
a segment (a Sprites clip and its frames; a speech segment and its log-mel frames; a window of a
series and its steps). So z_seq is read per step from that step alone, z_seg (d_t) from the step
and its z_seq, and the static code s of the API is mu*, over the sequence's observed steps.

Where this departs, and why:
- Segments are single steps, read by an MLP over the shared per-step feature, where the reference
  runs LSTMs over 20-frame segments: the data sets here have 8 to 64 steps per sequence.
- p(x | z) is the backbone's squared error (a fixed-variance Gaussian), as every method here;
  the shared ELBO weights are the backbone's.
- On held-out data (no row in the table, index None) the KL of z_seq is taken around mu*, and
  there is no discriminative term.
- No learned prior: d_t ~ N(0, I) independently per step, so sample_dynamics returns samples
  of it (its means are all zero), prior() returns N(0, I), and there is nothing to fit.
- mu_table "estimate" (not the default): the table is not trained; each time a training sequence
  is in a batch its row is set to mu* of its steps, the value of mu_i that maximises the ELBO's
  terms in mu_i (the KL of z_seq around it plus log p(mu_i)) given the encoder. The reference's
  gradient-trained table takes hundreds of updates a row to get there (each TIMIT utterance is in
  a batch about a hundred times an epoch, for up to 500 epochs); a Sprites clip at the cpu
  preset's budget is in 24 batches, and its row stays at its random start (docs/methods.md).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from model import SPYL, kl_normal, kl_standard_normal, reference_init, reparameterize, squared_error

SEQ_VAR = 0.25    # the variance of z_seq around its sequence's mean (std 0.5), as the reference


class FHVAE(SPYL):
    """FHVAE on the backbone's per-step networks: per-step z_seq and z_seg (d_t), a table of
    sequence means mu (one row per training sequence), s = mu* for the API."""
    method = "fhvae"
    warms_up = False
    defaults = {}
    training_only = ("mu",)   # the table: released (half) files leave it out

    def __init__(self, config=None, frame_encoder=None, frame_decoder=None):
        """The backbone's per-step encoder and decoder, per-step posteriors in place of its
        recurrent ones, no prior network, and the table mu (dataset_size x s_dim, N(0, I))."""
        super().__init__(config, frame_encoder, frame_decoder)
        cfg, H = self.config, self.config.hidden
        del self.bilstm, self.d_rnn, self.prior_lstm, self.prior_mean, self.prior_logvar
        self.seq_net = nn.Sequential(nn.Linear(cfg.g_dim, H), nn.LeakyReLU(0.2))            # q(z_seq,t | x_t)
        self.s_mean, self.s_logvar = nn.Linear(H, cfg.s_dim), nn.Linear(H, cfg.s_dim)
        self.seg_net = nn.Sequential(nn.Linear(cfg.g_dim + cfg.s_dim, H), nn.LeakyReLU(0.2))  # q(d_t | x_t, z_seq,t)
        self.d_mean, self.d_logvar = nn.Linear(H, cfg.d_dim), nn.Linear(H, cfg.d_dim)
        if cfg.init == "reference":
            for m in (self.seq_net, self.s_mean, self.s_logvar, self.seg_net, self.d_mean, self.d_logvar):
                m.apply(reference_init)
        self.mu = nn.Parameter(torch.randn(cfg.dataset_size, cfg.s_dim))

    # ---- posteriors -------------------------------------------------------------

    def _features(self, x):
        """(g B x T x g_dim, steps observed B x T: any value of the step is not NaN)."""
        B, T = x.shape[:2]
        return self.frame_encoder(torch.nan_to_num(x).flatten(0, 1)).view(B, T, -1), (x == x).flatten(2).any(2)

    def _seq_posterior(self, g):
        h = self.seq_net(g)
        return self.s_mean(h), self._bound(self.s_logvar(h))                    # B x T x s_dim each

    def _seg_posterior(self, g, z_seq):
        h = self.seg_net(torch.cat([g, z_seq], dim=2))
        return self.d_mean(h), self._bound(self.d_logvar(h))                    # B x T x d_dim each

    @staticmethod
    def sequence_mean(z_seq_mean, steps):
        """mu* = sum_t E[z_seq,t] / (N + 0.25) over the N observed steps (B x T mask), the mean of
        mu's posterior given them, and log of its variance 0.25 / (N + 0.25): each B x s_dim."""
        n = steps.float().sum(1, keepdim=True)                                    # B x 1
        mean = (z_seq_mean * steps[..., None]).sum(1) / (n + SEQ_VAR)
        return mean, torch.log(SEQ_VAR / (n + SEQ_VAR)).expand_as(mean)

    def encode(self, x):
        """x -> (s_mean, s_logvar) B x s_dim: mu* and its log-variance (sequence_mean);
        (d_mean, d_logvar) B x T x d_dim: q(z_seg,t | x_t, E[z_seq,t])."""
        g, steps = self._features(x)
        z_mean, _ = self._seq_posterior(g)
        s_mean, s_logvar = self.sequence_mean(z_mean, steps)
        d_mean, d_logvar = self._seg_posterior(g, z_mean)
        return s_mean, s_logvar, d_mean, d_logvar

    # ---- prior: N(0, I) per step -------------------------------------------------

    def prior(self, d):
        """p(d_t) = N(0, I) at every step: means and log-variances, zeros like d."""
        return torch.zeros_like(d), torch.zeros_like(d)

    def sample_prior(self, n, T):
        """The means and log-variances of p(d_t) = N(0, I): zeros, n x T x d_dim each."""
        zeros = torch.zeros(n, T, self.config.d_dim, device=self.device)
        return zeros, zeros

    def sample_dynamics(self, n, T=None):
        """n x T x d_dim samples of N(0, I), independent per step (the prior's means are all zero)."""
        return torch.randn(n, T or self.config.frames, self.config.d_dim, device=self.device)

    # ---- loss ---------------------------------------------------------------------

    def forward(self, x, contrastive=True, index=None):
        """FHVAE's loss terms of a batch and their weighted total: recon, kl_s (of z_seq,t around
        the sequence's mu), kl_d (of z_seg,t against N(0, I)); with index (the batch's rows of the
        training set) also prior_mu (-log p(mu_i) up to a constant) and disc (-log q(i | z_seq))."""
        cfg = self.config
        B = x.shape[0]
        g, steps = self._features(x)
        z_mean, z_logvar = self._seq_posterior(g)
        z_seq = reparameterize(z_mean, z_logvar)
        d_mean, d_logvar = self._seg_posterior(g, z_seq)
        d = reparameterize(d_mean, d_logvar)
        x_hat = self.frame_decoder(torch.cat([d, z_seq], 2).flatten(0, 1)).view(x.shape).float()
        z_mean, z_logvar, d_mean, d_logvar = (t.float() for t in (z_mean, z_logvar, d_mean, d_logvar))
        if index is not None and cfg.mu_table == "estimate":
            with torch.no_grad():   # the rows' optimum given the encoder: set, not descended to
                self.mu[index] = self.sequence_mean(z_mean, steps)[0].to(self.mu.dtype)
        table = self.mu if cfg.mu_table == "learned" else self.mu.detach()
        mu = table[index] if index is not None else self.sequence_mean(z_mean, steps)[0]   # B x s_dim
        step_w = steps.float()[..., None]                                          # B x T x 1
        log_var = torch.full_like(z_mean, math.log(SEQ_VAR))
        terms = {
            "recon": squared_error(x_hat, x).sum() / B,
            "kl_s": (kl_normal(z_mean, z_logvar, mu[:, None].expand_as(z_mean), log_var) * step_w).sum() / B,
            "kl_d": (kl_standard_normal(d_mean, d_logvar) * step_w).sum() / B,
        }
        total = cfg.w_recon * terms["recon"] + cfg.w_kl_s * terms["kl_s"] + cfg.w_kl_d * terms["kl_d"]
        if index is not None:
            terms["prior_mu"] = 0.5 * mu.pow(2).sum() / B
            table = table.float()                                                  # N x s_dim
            # -||E[z_seq,t] - mu_j||^2 / (2 x 0.25) for every step and every row: B x T x N
            logits = -(z_mean.pow(2).sum(-1, keepdim=True) - 2 * z_mean @ table.T + table.pow(2).sum(1)) / (2 * SEQ_VAR)
            nll = F.cross_entropy(logits.flatten(0, 1), index.repeat_interleave(x.shape[1]), reduction="none")
            terms["disc"] = (nll * steps.flatten()).sum() / B
            total = total + cfg.w_kl_s * terms["prior_mu"] + cfg.w_disc * terms["disc"]
        terms["loss"] = total
        return terms

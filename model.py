"""SPYL: a sequential VAE whose static and dynamic codes are disentangled by
sampling views from its own latent space and predicting them back.

Naiman, Berman, Azencot, "Sample and Predict Your Latent: Modality-free
Sequential Disentanglement via Contrastive Estimation", ICML 2023.

A sequence x_1..x_T is encoded into one static code s (B x s_dim) and one
dynamic code d_t per step (B x T x d_dim). Nothing in the method is specific to
images: the per-step encoder and decoder are swappable parts (`FRAME_NETS`),
the conv pair for 64x64 video frames being one choice and an MLP pair for
vector-valued steps (audio features, time series) another.
"""
import math
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import SPYLError, atomic_torch_save, between, check_bools, check_fields, load_checkpoint, one_of

CHECKPOINT_FORMAT = "spyl-model"
PRIOR_PREFIXES = ("prior_lstm.", "prior_mean.", "prior_logvar.")  # the parameters of p(d_t | d_<t)
CHECKPOINT_VERSION = 1


@dataclass
class SPYLConfig:
    """Architecture and loss settings; defaults are the paper's Sprites values."""
    # what a sequence looks like
    frames: int = 8
    channels: int = 3
    image_size: int = 64
    frame_net: str = "conv"      # "conv": C x H x W frames; "mlp": x_dim vectors
    x_dim: int = 0               # features per step, for frame_net "mlp"
    conv_width: int = 64         # channels of the first conv layer; doubles per layer
    # latent sizes
    s_dim: int = 256
    d_dim: int = 32
    g_dim: int = 128             # per-frame feature fed to the bi-LSTM
    hidden: int = 256
    # loss weights
    w_recon: float = 10.0
    w_kl_s: float = 5.0
    w_kl_d: float = 1.0
    w_mi: float = 1.0
    w_con_s: float = 1.0
    w_con_d: float = 1.0
    # contrastive estimation
    tau: float = 0.5
    n_negatives: int = 256
    bank_factor: int = 4         # the negative bank holds bank_factor x batch sequences
    negative_mode: str = "soft"  # soft, semi or hard, as the reference code ranks them (see select_negatives)
    dataset_size: int = 9000     # N in the minibatch-weighted MI estimate; train.py sets it to the training set's size
    # spyl, or one of the methods it is compared with on this backbone (methods/): dsvae, s3vae, cdsvae, dbse, fhvae
    method: str = "spyl"
    # the compared methods' own terms (each read only by its method; see its file in methods/)
    w_triplet: float = 100.0     # S3VAE: triplet loss on s, the positive a shuffle of the sequence
    w_motion: float = 0.1        # S3VAE: label-free motion targets predicted from d_t
    w_anchor: float = 2.0        # DBSE: extra weight on the anchor step's reconstruction
    anchor: str = "first"        # DBSE: the step s is read from: first, or loudest (largest mean value)
    w_disc: float = 10.0         # FHVAE: alpha, the weight of log q(sequence index | z_seq)
    mu_table: str = "learned"    # FHVAE: the table of sequence means trained (the reference), or set ("estimate")
    logvar_limit: float = 10.0   # |log-variance| bound, so exp() never overflows
    # reference: Conv2d/Linear weights ~ N(0, 0.01^2), biases 0 (the paper's code); torch: PyTorch's defaults
    init: str = "reference"
    # exact: the Gaussian density of the MI penalty; reference: the reference code's, kernels of std sigma^2
    mi_density: str = "exact"

    def __post_init__(self):
        check_bools(self)
        check_fields(self, CONFIG_RULES)
        if self.frame_net == "conv" and self.image_size & (self.image_size - 1):
            raise SPYLError("--image-size (image_size) must be a power of two for the conv frame net, got "
                            f"{self.image_size}")
        if self.frame_net == "mlp" and self.x_dim <= 0:
            raise SPYLError("--x-dim (x_dim) must be at least 1 for frame_net 'mlp' (features per step), got 0")

    @property
    def step_shape(self):
        """Shape of one step of a sequence: C x H x W for images, (x_dim,) for vectors."""
        if self.frame_net == "conv":
            return (self.channels, self.image_size, self.image_size)
        return (self.x_dim,)

    @classmethod
    def from_dict(cls, d):
        """Build a config from a dict, refusing keys this version does not know."""
        if "dsvae" in d:  # files written before `method` existed said DSVAE with a flag
            if not isinstance(d["dsvae"], bool):
                raise SPYLError(f"--dsvae (dsvae) must be true or false, got {d['dsvae']!r}")
            d = {"method": "dsvae" if d["dsvae"] else "spyl", **{k: v for k, v in d.items() if k != "dsvae"}}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SPYLError(f"config has fields this version does not know: {unknown}; update the code or the "
                            "checkpoint")
        # Files written before `init` existed (the released weights among them) were initialised
        # with PyTorch's defaults; say so rather than claim the newer default.
        return cls(**{"init": "torch", **d})


# What each field may be: checked whenever a config is made (flags, presets, checkpoints), and
# shown by train.py --help. The upper bounds only keep typos (a value meant as 1e-3 typed as
# 1e3) from running for hours.
_SIZE, _WEIGHT = between(1, 65536), between(0.0, 1e6, float)
CONFIG_RULES = {
    "frames": between(1, 4096), "channels": between(1, 64), "image_size": between(8, 1024),
    "frame_net": one_of("conv", "mlp"),
    "x_dim": between(0, 1 << 20), "conv_width": _SIZE, "s_dim": _SIZE, "d_dim": _SIZE, "g_dim": _SIZE, "hidden": _SIZE,
    **{w: _WEIGHT for w in ("w_recon", "w_kl_s", "w_kl_d", "w_mi", "w_con_s", "w_con_d")},
    "tau": between(1e-4, 100.0, float), "n_negatives": between(1, 1 << 20), "bank_factor": between(1, 1024),
    "negative_mode": one_of("soft", "semi", "hard"), "dataset_size": between(1, 2**31 - 1),
    "logvar_limit": between(0.1, 80.0, float),  # exp(80) is still finite in fp32 and bf16
    "init": one_of("reference", "torch"), "mi_density": one_of("exact", "reference"),
    "method": one_of("spyl", "dsvae", "s3vae", "cdsvae", "dbse", "fhvae"),
    **{w: _WEIGHT for w in ("w_triplet", "w_motion", "w_anchor", "w_disc")}, "anchor": one_of("first", "loudest"),
    "mu_table": one_of("learned", "estimate"),
}


# --------------------------------------------------------------------------
# Per-step encoder and decoder pairs. Each maps (N, *step_shape) <-> (N, dim).

class ConvFrameEncoder(nn.Module):
    """DCGAN conv stack: C x H x W -> g_dim, halving the size per layer down to 4x4."""

    def __init__(self, cfg):
        super().__init__()
        layers, c_in = [], cfg.channels
        for i in range(int(math.log2(cfg.image_size)) - 2):
            c_out = cfg.conv_width * 2 ** i
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2,
                                                                                                        inplace=True)]
            c_in = c_out
        layers += [nn.Conv2d(c_in, cfg.g_dim, 4, 1, 0, bias=False), nn.BatchNorm2d(cfg.g_dim), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).flatten(1)  # N x g_dim


class ConvFrameDecoder(nn.Module):
    """Mirror of the encoder: in_dim -> C x H x W in [0, 1]."""

    def __init__(self, cfg, in_dim):
        super().__init__()
        n = int(math.log2(cfg.image_size)) - 2
        widths = [cfg.conv_width * 2 ** i for i in reversed(range(n))]
        layers = [nn.ConvTranspose2d(in_dim, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]),
                  nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z[:, :, None, None])  # N x C x H x W


class MLPFrameEncoder(nn.Module):
    """Two-layer MLP for vector-valued steps: x_dim -> g_dim."""

    def __init__(self, cfg):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.x_dim, cfg.hidden), nn.LeakyReLU(0.2), nn.Linear(cfg.hidden,
                                                                                                cfg.g_dim), nn.Tanh())

    def forward(self, x):
        return self.net(x)


class MLPFrameDecoder(nn.Module):
    """Two-layer MLP back to x_dim; linear output, since features are unbounded."""

    def __init__(self, cfg, in_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.LeakyReLU(0.2), nn.Linear(cfg.hidden, cfg.x_dim))

    def forward(self, z):
        return self.net(z)


# the names of CONFIG_RULES["frame_net"]
FRAME_NETS = {"conv": (ConvFrameEncoder, ConvFrameDecoder), "mlp": (MLPFrameEncoder, MLPFrameDecoder)}


# --------------------------------------------------------------------------
# Gaussian helpers. All take means and log-variances of diagonal Gaussians.

def reparameterize(mean, logvar):
    """A sample of N(mean, exp(logvar)) that gradients flow through."""
    return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)


def kl_standard_normal(mean, logvar):
    """Elementwise KL(N(mean, var) || N(0, 1))."""
    return -0.5 * (1 + logvar - mean.pow(2) - logvar.exp())


def kl_normal(mean_q, logvar_q, mean_p, logvar_p):
    """Elementwise KL(N(mean_q, var_q) || N(mean_p, var_p))."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mean_q - mean_p).pow(2)) / logvar_p.exp() - 1)


def kl_matrix(mean_a, logvar_a, mean_b, logvar_b):
    """KL(q_a_i || q_b_j) summed over dimensions for every pair: A x D, B x D -> A x B.

    Expanded into matrix products so a 128 x 512 bank ranking never builds an
    A x B x D tensor.
    """
    inv_var_b = torch.exp(-logvar_b)                                             # B x D
    quad = (mean_a.pow(2) + logvar_a.exp()) @ inv_var_b.T - 2 * mean_a @ (mean_b * inv_var_b).T
    quad = quad + (mean_b.pow(2) * inv_var_b).sum(1)                             # A x B
    return 0.5 * (quad + logvar_b.sum(1) - logvar_a.sum(1, keepdim=True) - mean_a.shape[1])


def log_density(z, mean, logvar):
    """Elementwise log N(z; mean, exp(logvar))."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mean).pow(2) * torch.exp(-logvar))


def squared_error(x_hat, x):
    """Elementwise (x_hat - x)^2, 0 where x was not observed (NaN, as time series store them).
    No branch, so no host sync on a GPU; for complete data it is the plain squared error."""
    return torch.where(x == x, x_hat - x, 0.0).pow(2)


def mutual_information(s, s_mean, s_logvar, d, d_mean, d_logvar, dataset_size, density="exact"):
    """Minibatch-weighted-sampling estimate of I(s; d_t), clamped at zero and averaged.

    For each step t and sample i: log q(s_i, d_ti) - log q(s_i) - log q(d_ti), where
    each log q(.) = logsumexp_j log q(. | x_j) - log(B * N).
    s: B x s_dim, d: B x T x d_dim, with their posterior means and log-variances.
    density "reference" reproduces the reference code, which hands log-variances to a
    density that expects log standard deviations: its kernels have std sigma^2, not sigma.
    """
    if density == "reference":
        s_logvar, d_logvar = 2 * s_logvar, 2 * d_logvar   # variance (sigma^2)^2: a kernel of std sigma^2
    B = s.shape[0]
    log_bn = math.log(B * dataset_size)
    # log q(s_i | x_j): B x B, summed over dimensions
    logq_s_ij = log_density(s[:, None], s_mean[None], s_logvar[None]).sum(-1)
    # log q(d_ti | x_j): T x B x B
    d, d_mean, d_logvar = d.transpose(0, 1), d_mean.transpose(0, 1), d_logvar.transpose(0, 1)
    logq_d_ij = log_density(d[:, :, None], d_mean[:, None], d_logvar[:, None]).sum(-1)
    logq_s = torch.logsumexp(logq_s_ij, dim=1) - log_bn              # B
    logq_d = torch.logsumexp(logq_d_ij, dim=2) - log_bn              # T x B
    logq_sd = torch.logsumexp(logq_s_ij[None] + logq_d_ij, dim=2) - log_bn
    return F.relu(logq_sd - logq_s - logq_d).mean()


def info_nce(anchor, positive, bank, idx, tau):
    """InfoNCE with cosine similarity: anchor, positive B x D; the negatives of anchor i are
    the rows idx[i] (idx B x K) of bank (M x D).

    The bank is normalised before its rows are gathered: M rows instead of B x K (512 against
    32,768 at the paper's sizes), and the same numbers, since each row is normalised alone.
    """
    a, p, bank = (F.normalize(v, dim=-1) for v in (anchor, positive, bank))
    n = bank[idx]                                                                # B x K x D
    logits = torch.cat([(a * p).sum(-1, keepdim=True), torch.einsum("bd,bkd->bk", a, n)], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(a.shape[0], dtype=torch.long, device=a.device))


def select_negatives(mean_a, logvar_a, bank_mean, bank_logvar, n, mode):
    """Indices (A x n) into a bank of M, ranked per anchor by KL(q_anchor || q_bank) in
    descending order, as the reference code takes them:
    - soft: ranks 0 .. n-1, the n largest KLs;
    - semi: ranks M//3 .. M//3 + n - 1 (fewer if the bank ends first);
    - hard: n ranks drawn at random among the first 2 * (M//3), one permutation shared by
      every anchor of the batch (fewer if there are not that many).
    """
    kl = kl_matrix(mean_a.float(), logvar_a.float(), bank_mean.float(), bank_logvar.float())
    m = kl.shape[1]
    if mode == "soft":
        return kl.topk(min(n, m), dim=1).indices
    order = kl.argsort(dim=1, descending=True)                                   # A x M
    if mode == "semi":
        return order[:, m // 3:m // 3 + n]
    pool = 2 * (m // 3)
    # A permutation from sorting uniform keys, not torch.randperm: CUDA builds of PyTorch have
    # computed small permutations on the host, a copy that a captured CUDA graph cannot hold.
    return order[:, torch.rand(pool, device=order.device).argsort()[:n]]


def reference_init(module):
    """The reference code's initialisation: Conv2d and Linear weights ~ N(0, 0.01^2) with zero
    biases, BatchNorm weight 1 and bias 0; ConvTranspose2d, LSTM and RNN keep PyTorch's defaults."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.01)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------

class Pass(NamedTuple):
    """One forward pass of a batch, in fp32: posterior means and log-variances, their samples,
    the reconstruction; what a method's own terms are computed from."""
    s_mean: torch.Tensor     # B x s_dim
    s_logvar: torch.Tensor
    d_mean: torch.Tensor     # B x T x d_dim
    d_logvar: torch.Tensor
    s: torch.Tensor          # B x s_dim
    d: torch.Tensor          # B x T x d_dim
    x_hat: torch.Tensor      # B x T x *step_shape


class SPYL(nn.Module):
    """The SPYL sequential VAE. `forward(x, contrastive)` returns every loss term.

    It is also the backbone of the methods SPYL is compared with (methods/): each is a subclass
    with its own `method` name that changes what differs (its own terms, its encoder) and keeps
    the rest, so every script reads every method through the same API."""
    method = "spyl"
    # Whether the method's own terms wait for train.py's --warmup-epochs: SPYL's contrastive
    # terms do; a method whose terms start at once (or that has none) sets False.
    warms_up = True
    # values of shared config fields the method's reference code sets differently (methods.defaults)
    defaults = {}
    # weights only training reads, left out of half-precision (released) files: FHVAE's table of
    # training sequences is most of its bytes and no evaluation reads it
    training_only = ()
    # the training_only weights the file this model was loaded from did not hold
    left_out = ()

    def __init__(self, config=None, frame_encoder=None, frame_decoder=None):
        """Build from a config; pass frame_encoder/frame_decoder to swap the per-step nets."""
        super().__init__()
        cfg = self.config = config or SPYLConfig(method=self.method)
        if cfg.method != self.method:
            raise SPYLError(f"the config's method is {cfg.method!r}, not {self.method!r}: build it with "
                            "methods.build(config)")
        enc_cls, dec_cls = FRAME_NETS[cfg.frame_net]
        self.frame_encoder = frame_encoder or enc_cls(cfg)
        self.frame_decoder = frame_decoder or dec_cls(cfg, cfg.s_dim + cfg.d_dim)
        H = cfg.hidden
        # posteriors q(s | x) and q(d_t | x)
        self.bilstm = nn.LSTM(cfg.g_dim, H, batch_first=True, bidirectional=True)
        self.s_mean = nn.Linear(2 * H, cfg.s_dim)
        self.s_logvar = nn.Linear(2 * H, cfg.s_dim)
        self.d_rnn = nn.RNN(2 * H, H, batch_first=True)
        self.d_mean = nn.Linear(H, cfg.d_dim)
        self.d_logvar = nn.Linear(H, cfg.d_dim)
        # learned prior p(d_t | d_<t): a two-layer LSTM chain started from d_0 = 0
        self.prior_lstm = nn.LSTM(cfg.d_dim, H, num_layers=2, batch_first=True)
        self.prior_mean = nn.Linear(H, cfg.d_dim)
        self.prior_logvar = nn.Linear(H, cfg.d_dim)
        # How the step runs, not what it computes: set by train.py and bench.py, never stored.
        self.plain_bank = False    # build the negative bank under autograd (bench.py's plain mode)
        self.fused_prior = False   # the sampled prior chain as fused cells (see _sample_prior_fused)
        if cfg.init == "reference":
            self.apply(reference_init)

    @property
    def device(self):
        return next(self.parameters()).device

    def prior_parameters(self):
        """The parameters of p(d_t | d_<t): the prior LSTM chain and its two output layers."""
        return [p for name, p in self.named_parameters() if name.startswith(PRIOR_PREFIXES)]

    def _bound(self, logvar):
        # A soft bound keeps gradients alive while exp() stays finite in bf16 and fp32.
        lim = self.config.logvar_limit
        return lim * torch.tanh(logvar / lim)

    # ---- posteriors, prior, decoder -------------------------------------

    def encode(self, x):
        """x: B x T x *step_shape -> (s_mean, s_logvar) B x s_dim, (d_mean, d_logvar) B x T x d_dim.

        Values not observed (NaN, as time series store them) are zero-filled."""
        x = torch.nan_to_num(x)
        B, T = x.shape[:2]
        g = self.frame_encoder(x.flatten(0, 1)).view(B, T, -1)      # B x T x g_dim
        h, _ = self.bilstm(g)                                        # B x T x 2H
        H = self.config.hidden
        h_s = torch.cat([h[:, -1, :H], h[:, 0, H:]], dim=1)         # B x 2H: last forward, first backward
        h_d, _ = self.d_rnn(h)                                       # B x T x H
        return (self.s_mean(h_s), self._bound(self.s_logvar(h_s)),
                self.d_mean(h_d), self._bound(self.d_logvar(h_d)))

    def decode(self, s, d):
        """s: B x s_dim, d: B x T x d_dim -> x: B x T x *step_shape."""
        B, T = d.shape[:2]
        z = torch.cat([d, s[:, None].expand(B, T, s.shape[1])], dim=2)  # B x T x (d_dim + s_dim)
        return self.frame_decoder(z.flatten(0, 1)).view(B, T, *self.config.step_shape)

    def prior(self, d):
        """Teacher-forced prior: p(d_t | d_<t) for a given d (B x T x d_dim) -> means, log-variances."""
        d_prev = F.pad(d[:, :-1], (0, 0, 1, 0))                      # B x T x d_dim, d_0 = 0
        h, _ = self.prior_lstm(d_prev)
        return self.prior_mean(h), self._bound(self.prior_logvar(h))

    def sample_prior(self, n, T):
        """Run the prior chain, each step fed a sample of the last: means, log-variances n x T x d_dim."""
        if self.fused_prior:
            return self._sample_prior_fused(n, T)
        d_t = torch.zeros(n, 1, self.config.d_dim, device=self.device)
        state, means, logvars = None, [], []
        for _ in range(T):
            h, state = self.prior_lstm(d_t, state)
            mean, logvar = self.prior_mean(h), self._bound(self.prior_logvar(h))
            d_t = reparameterize(mean, logvar)
            means.append(mean)
            logvars.append(logvar)
        return torch.cat(means, 1), torch.cat(logvars, 1)

    def _sample_prior_fused(self, n, T):
        """sample_prior with each LSTM layer as one matrix product per step ([W_ih | W_hh],
        b_ih + b_hh, joined once per chain) and the mean and log-variance heads as one: a chain
        of single steps is a few dozen small kernels each, and on a GPU their launches, not
        their arithmetic, are its cost. The same numbers as nn.LSTM to rounding."""
        lstm, H = self.prior_lstm, self.config.hidden
        cells = [(torch.cat([getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")], 1).T,
                  getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")) for k in range(lstm.num_layers)]
        head_w = torch.cat([self.prior_mean.weight, self.prior_logvar.weight]).T   # H x 2 d_dim
        head_b = torch.cat([self.prior_mean.bias, self.prior_logvar.bias])
        d_t = torch.zeros(n, self.config.d_dim, device=self.device)
        h = [d_t.new_zeros(n, H) for _ in cells]
        c = [d_t.new_zeros(n, H) for _ in cells]
        means, logvars = [], []
        for _ in range(T):
            inp = d_t
            for k, (w, b) in enumerate(cells):
                # n x 4H: input, forget, cell, output
                gates = torch.addmm(b, torch.cat([inp, h[k]], 1), w)
                i, f, g, o = gates.chunk(4, 1)
                c[k] = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
                h[k] = inp = torch.sigmoid(o) * torch.tanh(c[k])
            mean, logvar = torch.addmm(head_b, inp, head_w).chunk(2, 1)
            logvar = self._bound(logvar)
            d_t = reparameterize(mean, logvar)
            means.append(mean)
            logvars.append(logvar)
        return torch.stack(means, 1), torch.stack(logvars, 1)

    def sample_static(self, n):
        """n x s_dim from p(s) = N(0, I)."""
        return torch.randn(n, self.config.s_dim, device=self.device)

    def sample_dynamics(self, n, T=None):
        """n x T x d_dim dynamics drawn from the prior, as the evaluation decodes them: the
        per-step means of a prior chain whose steps are sampled."""
        return self.sample_prior(n, T or self.config.frames)[0]

    def swap(self, x_a, x_b):
        """(appearance of a with motion of b, appearance of b with motion of a), from posterior means."""
        s_a, _, d_a, _ = self.encode(x_a)
        s_b, _, d_b, _ = self.encode(x_b)
        return self.decode(s_a, d_b), self.decode(s_b, d_a)

    # ---- losses -----------------------------------------------------------

    def _negative_bank(self, n, T):
        """Sample n sequences from the priors, decode, encode again: static and time-averaged
        dynamic posterior means and log-variances, each n x dim, with no autograd graph.

        With `plain_bank` set the bank is built under autograd and detached afterwards, as a
        straightforward implementation would; the values are the same (bench.py's plain mode).
        """
        with torch.set_grad_enabled(self.plain_bank and torch.is_grad_enabled()):
            x = self.decode(self.sample_static(n), self.sample_dynamics(n, T))
            s_mean, s_logvar, d_mean, d_logvar = self.encode(x)
        return tuple(t.detach() for t in (s_mean, s_logvar, d_mean.mean(1), d_logvar.mean(1)))

    def forward(self, x, contrastive=True, index=None):
        """Every loss term of a batch x (B x T x *step_shape; NaN where a value was not observed)
        and their weighted total, as a dict: the sequential VAE's ELBO terms every method shares,
        then the method's own (`method_terms`). The reconstruction sums squared errors over the
        observed values only.

        contrastive=False: the warm-up epochs (SPYL's sample-and-predict terms wait for them to
        end). index: the batch's rows of the training set (B), read by the methods that keep a
        table of training sequences (FHVAE); None for held-out data.
        """
        cfg = self.config
        B = x.shape[0]
        # Missing values (NaN) count nowhere in the reconstruction (squared_error); encode
        # zero-fills them at the input.
        s_mean, s_logvar, d_mean, d_logvar = self.encode(x)
        s, d = reparameterize(s_mean, s_logvar), reparameterize(d_mean, d_logvar)
        x_hat = self.decode(s, d)
        p_mean, p_logvar = self.prior(d)
        z = Pass(*(t.float() for t in (s_mean, s_logvar, d_mean, d_logvar, s, d, x_hat)))
        p_mean, p_logvar = p_mean.float(), p_logvar.float()
        terms = {
            "recon": squared_error(z.x_hat, x).sum() / B,
            "kl_s": kl_standard_normal(z.s_mean, z.s_logvar).sum() / B,
            "kl_d": kl_normal(z.d_mean, z.d_logvar, p_mean, p_logvar).sum() / B,
        }
        total = cfg.w_recon * terms["recon"] + cfg.w_kl_s * terms["kl_s"] + cfg.w_kl_d * terms["kl_d"]
        for name, (weight, value) in self.method_terms(x, z, contrastive, index).items():
            terms[name] = value
            total = total + weight * value
        terms["loss"] = total
        return terms

    def mi_penalty(self, z):
        """The MI estimate between s and d_t of a batch's Pass (mutual_information), with the
        config's dataset size and density: SPYL's penalty, and C-DSVAE's and S3VAE's."""
        return mutual_information(z.s, z.s_mean, z.s_logvar, z.d, z.d_mean, z.d_logvar, self.config.dataset_size,
                                  self.config.mi_density)

    def method_terms(self, x, z, contrastive, index):
        """SPYL's own terms, {name: (weight, value)}: the MI penalty always, and after the warm-up
        the two sample-and-predict InfoNCE terms. z: the batch's Pass (posteriors, samples, x_hat)."""
        cfg = self.config
        B, T = x.shape[:2]
        own = {"mi": (cfg.w_mi, self.mi_penalty(z))}
        if not contrastive:
            return own
        bank_s_mean, bank_s_logvar, bank_d_mean, bank_d_logvar = self._negative_bank(cfg.bank_factor * B, T)
        # static view: keep s, draw the motion from the prior; its re-encoded s is the positive
        s_pos = self.encode(self.decode(z.s_mean, self.sample_dynamics(B, T)))[0].float()
        # dynamic view: keep d, draw a new appearance; its re-encoded d is the positive
        d_pos = self.encode(self.decode(self.sample_static(B), z.d_mean))[2].float().mean(1)
        d_anchor, d_anchor_logvar = z.d_mean.mean(1), z.d_logvar.mean(1)
        idx_s = select_negatives(z.s_mean.detach(), z.s_logvar.detach(), bank_s_mean, bank_s_logvar, cfg.n_negatives,
                                 cfg.negative_mode)
        idx_d = select_negatives(d_anchor.detach(), d_anchor_logvar.detach(), bank_d_mean, bank_d_logvar,
                                 cfg.n_negatives, cfg.negative_mode)
        own["nce_s"] = (cfg.w_con_s, info_nce(z.s_mean, s_pos, bank_s_mean.float(), idx_s, cfg.tau))  # B x K x s_dim
        own["nce_d"] = (cfg.w_con_d, info_nce(d_anchor, d_pos, bank_d_mean.float(), idx_d, cfg.tau))  # B x K x d_dim
        return own

    # ---- checkpoints ------------------------------------------------------

    def checkpoint(self, data="sprites", half=False):
        """The dict `save` writes: format tag, version, config, the data set's name, weights
        (with half=True, a released file: floating-point tensors in fp16, which loading puts back in
        fp32, and without the weights only training reads, named under "left_out")."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        left_out = list(self.training_only) if half else []
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items() if k not in left_out}
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": asdict(self.config),
                "data": data, "model": state, **({"left_out": left_out} if left_out else {})}

    def save(self, path, data="sprites", half=False):
        """Write weights, config and the name of the data set trained on to path, atomically;
        half=True writes a released file (fp16, half the bytes, without training-only weights)."""
        atomic_torch_save(self.checkpoint(data, half), path)

    @classmethod
    def from_checkpoint(cls, ckpt, path="checkpoint"):
        """Rebuild a model from a checkpoint dict written by `save` or by train.py, as the class of
        the method its config names (SPYL, or one of methods/), whichever class it is called on."""
        if not isinstance(ckpt, dict) or ckpt.get("format") not in (CHECKPOINT_FORMAT, "spyl-train"):
            raise SPYLError(f"{path} is not a SPYL checkpoint (no SPYL format tag); pass a file written by train.py "
                            "or SPYL.save")
        if ckpt.get("version") != CHECKPOINT_VERSION:
            raise SPYLError(f"{path} has checkpoint format version {ckpt.get('version')}, this code reads version "
                            f"{CHECKPOINT_VERSION}")
        try:
            config = SPYLConfig.from_dict(ckpt["config"])
        except SPYLError as e:
            raise SPYLError(f"{path} holds a config this code refuses: {e}") from None
        from methods import METHODS  # the method's own class; methods/ imports this module, so not at the top
        model = METHODS[config.method](config)
        try:
            missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
        except RuntimeError as e:  # a tensor of another shape
            problem = (str(e).strip().splitlines()[1:2] or [str(e)])[0].strip()
        else:  # a released file may leave out what only training reads, and says so
            allowed = set(ckpt.get("left_out", ())) & set(model.training_only)
            wrong = sorted(set(missing) - allowed)
            problem = f"missing {wrong}" if wrong else f"unexpected {unexpected}" if unexpected else None
            model.left_out = tuple(sorted(missing))
        if problem:
            raise SPYLError(f"{path} does not match its stored config ({problem}); the file is damaged or was edited")
        return model

    @classmethod
    def load(cls, path, map_location=None):
        """Load a model saved by `save` (or a train.py checkpoint), of any method, in eval mode."""
        model = cls.from_checkpoint(load_checkpoint(path, map_location="cpu"), path)
        return model.to(map_location or "cpu").eval()

"""C-DSVAE (Bai, Wang, Gomes, "Contrastively Disentangled Sequential Variational Autoencoder",
NeurIPS 2021): DSVAE plus the MI penalty, and InfoNCE terms that pull s towards the s of a
*content view* (appearance kept, motion broken) and d towards the d of a *motion view* (motion
kept, appearance changed).

Reference code: JunwenBai/C-DSVAE @8eddd33.
- train_cdsvae.py:81-140: the loss; the views are encoded, the InfoNCE terms compare s means
  (x against the content view) and flattened d means (T x d_dim; x against the motion view),
  each with weight 10 (run_cdsvae.sh), plus the MI penalty with weight 1.
- loss.py:11-42: NT-Xent over the 2B stacked vectors, cosine similarity, tau 0.5: the positive
  is the paired view, the negatives every other vector of the batch.

Where this departs, and why:
- The views. The reference reads them from a data.pkl whose making code was never released,
  for Sprites only. Here they are made on the fly, label-free, for every modality, from one rule:
  the content view permutes the steps of each sequence (every step is its own, so what is static
  is kept and the order, the motion, is broken); the motion view applies one random map to every
  step of a sequence (so what changes from step to step is kept and what is constant is changed):
  for video a colour jitter (brightness, contrast, saturation, a channel permutation, grayscale
  with p 0.2), as in SimCLR, without its per-frame blur; for vectors (speech, time series) a
  random gain and a random offset per feature.
- The views are encoded only: the reference decodes them too and never reads the result.
- The s heads end in a linear layer, as every method here, not the reference's LeakyReLU.
- The shared ELBO weights (reconstruction 10, KL(s) 5 at the paper preset) are the backbone's,
  the same for every method, where the reference weighs each 1.
"""
import torch
import torch.nn.functional as F

from methods.s3vae import shuffle_steps
from model import SPYL

GRAYSCALE_P = 0.2
JITTER_P = 0.8            # the colour jitter is applied to a clip with this probability, as SimCLR
JITTER = 0.8              # brightness, contrast and saturation factors drawn from [1 - 0.8, 1 + 0.8]
GAIN, OFFSET = 0.5, 1.0   # vectors: gain from [1 - 0.5, 1 + 0.5], offset ~ N(0, 1) (features are standardised)


# The content view: each sequence's steps in a random order of their own (S3VAE's triplet positive)
content_view = shuffle_steps


def motion_view(x):
    """Each sequence of x with one random map applied to all of its steps: a colour jitter for
    video (B x T x C x H x W in [0, 1]), a gain and per-feature offset for vectors (B x T x D)."""
    B = x.shape[0]
    u = lambda *shape: torch.rand(B, *shape, device=x.device)
    if x.dim() == 3:
        return x * (1 + GAIN * (2 * u(1, 1) - 1)) + OFFSET * torch.randn(B, 1, x.shape[2], device=x.device)
    factor = lambda: 1 + JITTER * (2 * u(1, 1, 1, 1) - 1)                        # B x 1 x 1 x 1 x 1
    on = u(1, 1, 1, 1) < JITTER_P
    gray = lambda v: v.mean(2, keepdim=True).expand_as(v)
    y = x * torch.where(on, factor(), 1.0)                                       # brightness
    y = torch.where(on, (y - y.mean((1, 2, 3, 4), keepdim=True)) * factor() + y.mean((1, 2, 3, 4), keepdim=True), y)
    y = torch.where(on, gray(y) + (y - gray(y)) * factor(), y)                   # saturation
    perm = torch.rand(B, x.shape[2], device=x.device).argsort(1)                 # B x C: a hue change
    y = torch.where(on, y[torch.arange(B, device=x.device)[:, None], :, perm].transpose(1, 2), y)
    y = torch.where(u(1, 1, 1, 1) < GRAYSCALE_P, gray(y), y)
    return y.clamp(0, 1)


def nt_xent(a, b, tau):
    """NT-Xent over the 2B rows of [a; b] (each B x D): row i's positive is its pair, its
    negatives the other 2B - 2 rows; cosine similarity over tau, the mean over rows."""
    v = F.normalize(torch.cat([a, b]), dim=1)                                    # 2B x D
    sim = (v @ v.T / tau).fill_diagonal_(float("-inf"))
    rows = torch.arange(a.shape[0], device=a.device)   # made on the device: no copy inside a CUDA graph
    target = torch.cat([rows + a.shape[0], rows])
    return F.cross_entropy(sim, target)


class CDSVAE(SPYL):
    """model.SPYL with C-DSVAE's terms: MI, and InfoNCE against its content and motion views."""
    method = "cdsvae"
    warms_up = False   # the reference has no warm-up: its views are there from the first step
    defaults = {"w_con_s": 10.0, "w_con_d": 10.0}

    def method_terms(self, x, z, contrastive, index):
        """{name: (weight, value)}: mi, nce_s (s against the content view's), nce_d (d against the
        motion view's, flattened over steps). contrastive=False (a warm-up asked for) leaves the
        InfoNCE terms out."""
        cfg = self.config
        own = {"mi": (cfg.w_mi, self.mi_penalty(z))}
        if contrastive:
            # A missing value (NaN) moves with its step in the content view and stays NaN in the
            # motion view's arithmetic: encode zero-fills both as it does x.
            s_content = self.encode(content_view(x))[0].float()
            d_motion = self.encode(motion_view(x))[2].float()
            own["nce_s"] = (cfg.w_con_s, nt_xent(z.s_mean, s_content, cfg.tau))
            own["nce_d"] = (cfg.w_con_d, nt_xent(z.d_mean.flatten(1), d_motion.flatten(1), cfg.tau))
        return own

"""S3VAE (Zhu, Min, Kadav, Graf, "S3VAE: Self-Supervised Sequential VAE for Representation
Disentanglement and Data Generation", CVPR 2020): DSVAE plus a triplet loss that keeps s the same
under a shuffle of the steps, auxiliary targets of motion that d_t must predict, and a small MI
penalty.

No official code was released. Followed: the closest public copy, jithendaraa/ODE-RL @0d4c701,
code_sprite/train_DS_VAE_sprite.py: defaults at lines 21-60, the loss at 200-242 (ELBO + 100 x
triplet + 0.1 x motion area + 0.1 x motion direction + 0.01 x MI). The triplet is PyTorch's
TripletMarginLoss (margin 1, Euclidean) on the s means of the sequence (anchor), the sequence
with its steps shuffled (positive) and another sequence (negative). The motion-area head predicts,
per step after the first, which cells of a 3 x 3 grid move (binary cross-entropy).

Where this departs, and why (the row is "S3VAE, label-free"):
- The motion targets. The reference reads optical-flow pseudo-labels from a pickle that is not
  public, and TIMIT used a voice-activity detector. Here they are computed from the data itself:
  video, which cells of a 3 x 3 grid change by more than MOVING (mean absolute frame difference);
  vectors (speech, time series), the signs of each feature's step-to-step difference, NaN-masked.
  The 8-way motion-direction head needs flow, and is left out.
- The negative is another sequence of the same batch (its s mean rolled by one), so it needs no
  extra encoder pass; the reference encodes a separately drawn clip.
- The shared ELBO weights are the backbone's, the same for every method.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from model import SPYL, reference_init

GRID = 3          # the motion-area cells per side
MOVING = 0.01     # a cell moves when its mean absolute frame difference (pixels in [0, 1]) is above this
MARGIN = 1.0      # of the triplet loss, as the reference


def shuffle_steps(x):
    """Each sequence of x (B x T x ...) with its steps in a random order of its own."""
    B, T = x.shape[:2]
    order = torch.rand(B, T, device=x.device).argsort(1)                       # B x T
    return x[torch.arange(B, device=x.device)[:, None], order]


def motion_targets(x):
    """(targets, mask), each B x (T-1) x K, of the motion between each step and the one before:
    video (B x T x C x H x W): K = 9 cells, 1 where the cell moves; vectors (B x T x D): K = D,
    1 where the feature went up. mask is 0 where a difference reads a missing value (NaN)."""
    diff = x[:, 1:] - x[:, :-1]
    if x.dim() == 5:
        B, T1 = diff.shape[:2]
        energy = F.adaptive_avg_pool2d(diff.abs().mean(2).flatten(0, 1), GRID).view(B, T1, GRID * GRID)
        return (energy > MOVING).float(), torch.ones_like(energy)
    mask = (diff == diff).float()
    return (torch.nan_to_num(diff) > 0).float(), mask


class S3VAE(SPYL):
    """model.SPYL with S3VAE's terms: a triplet on s, motion targets predicted from d_t, MI."""
    method = "s3vae"
    warms_up = False   # its terms need no sampled views: they start at the first step, as the reference
    defaults = {"w_mi": 0.01}

    def __init__(self, config=None, frame_encoder=None, frame_decoder=None):
        """The backbone plus a linear head from d_t to the motion targets (9 cells, or x_dim)."""
        super().__init__(config, frame_encoder, frame_decoder)
        cfg = self.config
        self.motion_head = nn.Linear(cfg.d_dim, GRID * GRID if cfg.frame_net == "conv" else cfg.x_dim)
        if cfg.init == "reference":
            self.motion_head.apply(reference_init)

    def method_terms(self, x, z, contrastive, index):
        """{name: (weight, value)}: triplet, motion (binary cross-entropy, masked mean), mi."""
        cfg = self.config
        s_pos = self.encode(shuffle_steps(x))[0].float()
        triplet = F.triplet_margin_loss(z.s_mean, s_pos, z.s_mean.roll(1, 0), margin=MARGIN)
        target, mask = motion_targets(x)
        logits = self.motion_head(z.d[:, 1:]).float()                             # B x (T-1) x K
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        motion = (bce * mask).sum() / mask.sum().clamp(min=1)                     # the mean over what was observed
        return {"triplet": (cfg.w_triplet, triplet), "motion": (cfg.w_motion, motion),
                "mi": (cfg.w_mi, self.mi_penalty(z))}

"""DSVAE (Li & Mandt, "Disentangled Sequential Autoencoder", ICML 2018): the sequential VAE
every other method here extends, and nothing more. s ~ N(0, I), d_t from the learned LSTM
prior, the ELBO alone: no mutual-information penalty, no contrastive term.

Follows the backbone of SPYL's reference code (model.py; SPYL.md), as the papers compared
here re-implement DSVAE on it; it is model.SPYL with its own terms left out.
"""
from model import SPYL


class DSVAE(SPYL):
    """model.SPYL with no terms of its own: reconstruction, KL(s) and KL(d) only."""
    method = "dsvae"
    warms_up = False
    defaults = {}

    def method_terms(self, x, z, contrastive, index):
        """None: the ELBO terms forward() computes are the whole loss."""
        return {}

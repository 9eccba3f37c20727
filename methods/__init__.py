"""The methods SPYL is compared with, each one short file over the backbone in model.py.

Every method is a subclass of model.SPYL: the same per-step networks, priors, checkpoints and
API (encode, decode, sample_static, sample_dynamics, swap), with what makes it that method
changed and nothing else. So train.py trains any of them (`--method NAME`) and every script
that loads a model file (`SPYL.load`) reads any of them unchanged.

    DSVAE   dsvae.py    the sequential VAE alone (Li & Mandt, ICML 2018)
    S3VAE   s3vae.py    + a triplet on s and label-free motion targets for d (Zhu et al., CVPR 2020)
    C-DSVAE cdsvae.py   + InfoNCE against hand-made content and motion views (Bai et al., NeurIPS 2021)
    DBSE    dbse.py     s from one anchor step, d from differences to it (Berman et al., ICML 2024)
    FHVAE   fhvae.py    a table of sequence means and a discriminative term (Hsu et al., NeurIPS 2017)

docs/methods.md says, method by method, where each departs from its paper and reference code.
"""
from methods.cdsvae import CDSVAE
from methods.dbse import DBSE
from methods.dsvae import DSVAE
from methods.fhvae import FHVAE
from methods.s3vae import S3VAE
from model import SPYL
from utils import SPYLError

METHODS = {cls.method: cls for cls in (SPYL, DSVAE, S3VAE, CDSVAE, DBSE, FHVAE)}
# How tables and logs name them.
TITLES = {"spyl": "SPYL", "dsvae": "DSVAE", "s3vae": "S3VAE", "cdsvae": "C-DSVAE", "dbse": "DBSE", "fhvae": "FHVAE"}


def defaults(method):
    """The values of shared config fields a method's reference code sets differently (C-DSVAE's
    InfoNCE weights, S3VAE's MI weight): train.py puts them between the preset and the flags."""
    return dict(METHODS[method].defaults)


def parse_methods(text, flag="--methods"):
    """'spyl, dbse' -> ('spyl', 'dbse'), or a one-line error naming the methods there are."""
    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not names or any(m not in METHODS for m in names):
        raise SPYLError(f"{flag} {text!r}: give one or more of {', '.join(METHODS)}, comma-separated")
    return names


def build(config):
    """A fresh model of the method config.method names."""
    return METHODS[config.method](config)

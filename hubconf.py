"""torch.hub entry points.

    model = torch.hub.load("OWNER/REPO", "spyl")                        # the released Sprites model, eval mode
    model = torch.hub.load("path/to/checkout", "spyl", source="local")  # the same from a local checkout
    model = torch.hub.load("OWNER/REPO", "spyl_untrained", s_dim=64)    # a fresh model from SPYLConfig fields
    model = torch.hub.load("OWNER/REPO", "spyl_untrained", method="dbse")  # ... of a compared method (methods/)
    model = torch.hub.load("OWNER/REPO", "from_file", path="m.pth")     # any model file train.py wrote, any method
"""
import os

dependencies = ["torch", "numpy"]

from methods import build  # noqa: E402  (torch.hub reads `dependencies` first)
from model import SPYL, SPYLConfig  # noqa: E402

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "model.pth")


def spyl(map_location="cpu"):
    """SPYL trained on Sprites (the released weights/model.pth), in eval mode on map_location."""
    return SPYL.load(WEIGHTS, map_location=map_location)


def spyl_untrained(**config):
    """An untrained model built from SPYLConfig fields (SPYL with the paper's Sprites values by
    default; method= one of the compared methods), in train mode."""
    return build(SPYLConfig(**config))


def from_file(path, map_location="cpu"):
    """The model a file written by train.py (or SPYL.save) holds, of whichever method, in eval mode."""
    return SPYL.load(path, map_location=map_location)

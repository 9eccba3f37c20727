"""torch.hub entry points.

    model = torch.hub.load("OWNER/REPO", "spyl")                        # the released Sprites model, eval mode
    model = torch.hub.load("path/to/checkout", "spyl", source="local")  # the same from a local checkout
    model = torch.hub.load("OWNER/REPO", "spyl_untrained", s_dim=64)    # a fresh model from SPYLConfig fields
"""
import os

dependencies = ["torch", "numpy"]

from model import SPYL, SPYLConfig  # noqa: E402  (torch.hub reads `dependencies` first)

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "model.pth")


def spyl(map_location="cpu"):
    """SPYL trained on Sprites (the released weights/model.pth), in eval mode on map_location."""
    return SPYL.load(WEIGHTS, map_location=map_location)


def spyl_untrained(**config):
    """An untrained SPYL built from SPYLConfig fields (the paper's Sprites values by default), in train mode."""
    return SPYL(SPYLConfig(**config))

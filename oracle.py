"""The pixel oracle: reads the four appearance factors of a generated Sprites sequence
with no classifier at all.

Sprites are composed from known parts. A static-kept sample of test character c
(c's appearance, motion drawn from the prior) should show c. Whether it shows c's
skin, say, can be checked against the truth itself: render c with each of the 6
skins (the other factors kept) in all 72 frames (9 actions x 8), and read the skin
as the variant whose nearest render is closest to the sample, summed over the
sample's frames. Nothing is trained or calibrated, so nothing can be fooled: a
blend of two poses is as far from every render as its pixels say.

Squared distances come from matrix products, |a|^2 + |b|^2 - 2 a.b, one per
character over all of its samples and its 21 neighbours' renders (c itself and
5 other variants for each of the 4 factors).
"""
import numpy as np
import torch

from dataloader import ATTRIBUTES, FRAMES, N_CHARACTERS, SIZE, character_index, drop_mapped_pages
from utils import SPYLError

N_VARIANTS = 6
RENDERS_PER_CHARACTER = 9 * FRAMES  # 9 actions x 8 frames
# A generated frame is "real" if its RMS pixel distance (in [0, 1]) to the nearest render of its own
# character is below this: every reconstruction of the shipped model is (99th percentile 0.020),
# blends of poses are not.
REAL_FRAME_RMS = 0.03


def neighbours(static_label):
    """4 x 6 character indices: row k is the character with factor k set to variant 0..5."""
    rows = np.tile(np.asarray(static_label, dtype=np.int64), (len(ATTRIBUTES), N_VARIANTS, 1))  # 4 x 6 x 4
    for k in range(len(ATTRIBUTES)):
        rows[k, :, k] = np.arange(N_VARIANTS)
    return character_index(rows.reshape(-1, len(ATTRIBUTES))).reshape(len(ATTRIBUTES), N_VARIANTS)


class PixelOracle:
    """Nearest-render reader of skin, pants, top and hair, built from the composed Sprites.

    sets: SequenceData objects (uint8 N x T x H x W x C with labels N x 5) that together
    hold every character a reading will need: all 1296 for the whole test set (the
    training and test splits together), or a smaller set for tests.
    """

    def __init__(self, *sets):
        self.sets = sets
        self.rows = {}  # character -> (set number, its 9 sequence rows in action order)
        for n, data in enumerate(sets):
            chars = character_index(data.labels[:, 1:5])
            for c in np.unique(chars):
                rows = np.flatnonzero(chars == c)
                if sorted(data.labels[rows, 0]) == list(range(9)):
                    self.rows[int(c)] = (n, rows[np.argsort(data.labels[rows, 0])])

    def renders(self, characters):
        """The 72 frames of each character, as float32 len(characters) x 72 x H*W*C in [0, 1]."""
        out = []
        for c in characters:
            if int(c) not in self.rows:
                raise SPYLError(f"the oracle has no renders of character {int(c)}; build it from sets that hold all "
                                f"{N_CHARACTERS} characters (the Sprites train and test splits together)")
            n, rows = self.rows[int(c)]
            out.append(torch.from_numpy(np.ascontiguousarray(self.sets[n].x[rows])).reshape(RENDERS_PER_CHARACTER, -1))
        for data in self.sets:
            drop_mapped_pages(data.x)
        return torch.stack(out).float().div_(255)

    @torch.no_grad()
    def distances(self, x, static_labels):
        """x: N x T x 3 x 64 x 64 generated sequences in [0, 1]; static_labels: N x 4, the
        character each should show. Returns (N x T x 4 x 6 float tensor: each frame's squared
        distance to the nearest render of the character with factor k set to variant v; N x T
        float array: each frame's RMS pixel distance to the nearest of the 72 renders of its own
        character, 0 for a real frame). The renders of each character are built once per call,
        so passing every sample of a character together (all repeats) costs one build."""
        static_labels = np.asarray(static_labels)
        if x.ndim != 5 or tuple(x.shape[2:]) != (3, SIZE, SIZE):
            raise SPYLError(f"the oracle reads N x T x 3 x {SIZE} x {SIZE} sequences, got shape {tuple(x.shape)}")
        in_range = static_labels.min(initial=0) >= 0 and static_labels.max(initial=0) < N_VARIANTS
        if static_labels.shape != (len(x), len(ATTRIBUTES)) or not in_range:
            raise SPYLError("the oracle needs one static label row (4 values in 0..5) per sequence, got shape "
                            f"{static_labels.shape}")
        # frames as H x W x C, the layout of the stored renders
        frames = torch.nan_to_num(x.detach().float().cpu()).permute(0, 1, 3, 4, 2).flatten(2)   # N x T x D
        T = x.shape[1]
        out = torch.empty(len(x), T, len(ATTRIBUTES), N_VARIANTS)
        rms = torch.empty(len(x), T)
        chars = character_index(static_labels)
        for c in np.unique(chars):
            idx = np.flatnonzero(chars == c)
            grid = neighbours(static_labels[idx[0]])                             # 4 x 6 characters
            unique, where = np.unique(grid, return_inverse=True)                 # 21 characters
            r = self.renders(unique).flatten(0, 1)                               # 21*72 x D
            s = frames[idx].flatten(0, 1)                                        # n*T x D
            d2 = s.pow(2).sum(1, keepdim=True) + r.pow(2).sum(1) - 2 * s @ r.T   # n*T x 21*72
            nearest = d2.view(len(idx), T, len(unique), RENDERS_PER_CHARACTER).amin(-1)  # n x T x 21
            out[idx] = nearest[:, :, torch.from_numpy(where.reshape(grid.shape))]       # n x T x 4 x 6
            own = nearest[:, :, int(np.flatnonzero(unique == c)[0])]             # n x T
            rms[idx] = (own.clamp_min(0) / s.shape[1]).sqrt()
        return out, rms.numpy()

    def read(self, x, static_labels, distances=False, steps=slice(None)):
        """The variant of skin, pants, top and hair each sequence shows: N x 4 int64, the variant
        whose nearest renders are closest summed over the frames `steps` (default all). With
        distances=True also the N x T RMS distances of `distances` (0 for a real frame)."""
        d2, rms = self.distances(x, static_labels)
        out = variants_read(d2, steps)
        return (out, rms) if distances else out


def variants_read(d2, steps=slice(None)):
    """N x 4 variants read from the N x T x 4 x 6 distances of PixelOracle.distances, summed over
    the frames `steps`."""
    return d2[:, steps].sum(1).argmin(-1).numpy()

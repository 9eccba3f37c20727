"""What the two character sets share: Sprites (`sprites.py`) and the built-in set
(`builtin.py`) are both 1296 characters (skin x pants x top x hair, 6 variants each) in 9
actions of 8 frames of 64 x 64 RGB, composed from layers, split 1000/296 by character the
customary way, stored as uint8 N x T x H x W x C with integer labels N x 5 (action 0..8, then
skin, pants, top, hair 0..5 each), and turned into float batches B x T x C x H x W in [0, 1]
only when a batch is taken.
"""
import mmap

import numpy as np
import torch

ACTIONS = ("walk", "spellcast", "slash")
DIRECTIONS = ("front", "left", "right")
ACTION_NAMES = tuple(f"{a}-{d}" for a in ACTIONS for d in DIRECTIONS)  # label = 3 * action + direction
ATTRIBUTES = ("skin", "pants", "top", "hair")
LABEL_NAMES = ("action",) + ATTRIBUTES
N_CLASSES = (9, 6, 6, 6, 6)
N_CHARACTERS = 6 ** 4
N_TRAIN_CHARACTERS = 1000
FRAMES, SIZE = 8, 64
# Layers from bottom to top; each static factor has six variants, shoes are fixed.
LAYERS = ("body", "bottomwear", "topwear", "hair", "shoes")


# ---- the data set object -------------------------------------------------------

class SequenceData:
    """Sequences as uint8 N x T x H x W x C with labels N x 5; batches come out as floats."""

    def __init__(self, x, labels, name):
        self.x, self.labels, self.name = x, labels, name

    def __len__(self):
        return len(self.x)

    def batch(self, idx, device="cpu"):
        """Sequences idx -> float tensor B x T x C x H x W in [0, 1] on device.

        The uint8 bytes travel to the device and are converted there (4x less
        to copy); the permute leaves them channels-last in memory, which is what
        fast convolutions want.
        """
        x = torch.from_numpy(self.x[idx])
        drop_mapped_pages(self.x)
        x = x.to(device, non_blocking=True).permute(0, 1, 4, 2, 3)  # B x T x C x H x W
        return x.float().div_(255)


def drop_mapped_pages(x):
    """Unmap the pages a memory-mapped array has read from this process's resident memory.

    The kernel keeps them in its page cache, so reading them again costs no disk
    access; without this, training and evaluation leave the whole files (Sprites:
    1.1 GiB) counted in the process's RSS. One madvise call, about a millisecond.
    """
    if isinstance(x, np.memmap) and isinstance(x.base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        x.base.madvise(mmap.MADV_DONTNEED)


# ---- composing characters from layers ----------------------------------------

def character_labels(chars):
    """Character indices -> N x 4 static labels (skin, pants, top, hair)."""
    chars = np.asarray(chars)
    return np.stack([chars // 216, (chars // 36) % 6, (chars // 6) % 6, chars % 6], axis=1)


def character_index(static_labels):
    """N x 4 static labels (skin, pants, top, hair) -> N character indices (inverse of character_labels)."""
    s = np.asarray(static_labels, dtype=np.int64)
    return s[:, 0] * 216 + s[:, 1] * 36 + s[:, 2] * 6 + s[:, 3]


def split_characters():
    """The customary split: (train, test) character indices, 1000 and 296."""
    perm = np.random.RandomState(423).permutation(N_CHARACTERS)
    return perm[:N_TRAIN_CHARACTERS], perm[N_TRAIN_CHARACTERS:]


def _over(dst, src):
    """src (RGBA, uint32) over an opaque dst (RGB, any unsigned int), with PIL's integer rounding
    (Image.alpha_composite), so the result matches the reference script bit for bit."""
    a = src[..., 3:4]
    v = (src[..., :3] * a + dst * (255 - a) + 128) << 7
    return (((v >> 8) + v) >> 8) >> 7


def compose(layers, chars):
    """Alpha-composite characters over black.

    layers: per layer, its variants' frames (V x 9 x 8 x 64 x 64 x 4 uint8; V=1 for a
    fixed layer); chars: character indices. Returns (N*9) x 8 x 64 x 64 x 3 uint8,
    sequences ordered character-major, action-minor.
    """
    chars = np.asarray(chars)
    variants = np.concatenate([character_labels(chars), np.zeros((len(chars), 1), int)], axis=1)
    frame_px = 9 * FRAMES * SIZE * SIZE
    flat = [np.ascontiguousarray(v).reshape(len(v), frame_px, 4) for v in layers]
    # Most pixels of a layer are transparent in every variant: blend only where one is not.
    where = [np.flatnonzero(f[..., 3].any(axis=0)) for f in flat]
    touched = [f[:, w].astype(np.uint32) for f, w in zip(flat, where)]
    out = np.empty((len(chars), frame_px, 3), np.uint8)

    def paint(img, level, rows):
        # Depth first over the tree of layer choices: characters that share their lower
        # layers share those blends (6 bodies, 36 body+pants, ... instead of 5 per character).
        if level == len(layers):
            out[rows] = img
            return
        w, choice = where[level], variants[rows, level]
        values = np.unique(choice)
        for v in values:
            child = img.copy() if len(values) > 1 else img
            child[w] = _over(child[w], touched[level][v])
            paint(child, level + 1, rows[choice == v])

    paint(np.zeros((frame_px, 3), np.uint8), 0, np.arange(len(chars)))  # frame_px x 3
    return out.reshape(len(chars) * 9, FRAMES, SIZE, SIZE, 3)


def sequence_labels(chars):
    """Labels (N*9) x 5 of compose(..., chars): action, then the character's four factors."""
    static = np.repeat(character_labels(chars), 9, axis=0)
    action = np.tile(np.arange(9), len(chars))
    return np.concatenate([action[:, None], static], axis=1).astype(np.int64)


def build_split(layers, name, chars=None):
    """Compose the customary train/test split (or a subset of characters) as SequenceData."""
    train, test = split_characters()
    if chars is not None:  # a smaller set for tests: the same proportion of train characters
        n_train = max(1, round(chars * N_TRAIN_CHARACTERS / N_CHARACTERS))
        train, test = train[:n_train], test[:max(1, chars - n_train)]
    return tuple(SequenceData(compose(layers, c), sequence_labels(c), name) for c in (train, test))

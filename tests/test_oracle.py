"""The pixel oracle against the real Sprites: the truth reads right, a composed swap reads the
new variant, nonsense does not crash it, bad input gets one line."""
import numpy as np
import pytest
import torch

from conftest import SHEETS, needs_sheets
from dataloader import character_index, character_labels, compose, load_parts, load_sprites
from oracle import PixelOracle, neighbours
from utils import SPYLError


def test_character_index_inverts_character_labels():
    chars = np.arange(1296)
    assert np.array_equal(character_index(character_labels(chars)), chars)
    grid = neighbours([4, 0, 3, 2])
    assert grid.shape == (4, 6) and len(np.unique(grid)) == 21   # c itself in every row, 5 others each
    assert character_labels(grid[1])[:, 1].tolist() == list(range(6))   # row 1 walks through the pants
    assert (character_labels(grid[2])[:, [0, 1, 3]] == [4, 0, 2]).all()  # the other factors kept


@pytest.fixture(scope="module")
def sprites(sprites_dir):
    train, test = load_sprites(str(sprites_dir), None, download=False)
    return train, test, PixelOracle(train, test)


def to_float(x_uint8):
    return torch.from_numpy(np.array(x_uint8)).permute(0, 1, 4, 2, 3).float() / 255


@needs_sheets
def test_real_test_sequences_read_right(sprites):
    _, test, oracle = sprites
    idx = np.arange(0, len(test), 37)[:60]                      # 60 sequences of many characters and actions
    read = oracle.read(to_float(test.x[idx]), test.labels[idx, 1:])
    assert np.array_equal(read, test.labels[idx, 1:])


@needs_sheets
@pytest.mark.parametrize("factor", range(4))
def test_a_sequence_swapped_in_the_composer_reads_the_new_variant(sprites, factor):
    _, test, oracle = sprites
    truth = test.labels[9 * 5, 1:]                              # the 6th test character
    changed = truth.copy()
    changed[factor] = (truth[factor] + 2) % 6
    x = compose(load_parts(SHEETS), character_index(changed[None]))  # its 9 sequences, one factor swapped
    read = oracle.read(to_float(x), np.tile(truth, (9, 1)))     # asked as if they showed the original
    # Each factor is read against renders that keep the other three at the truth, so only the
    # swapped one is promised (a wrong top can tilt the skin reading: it covers skin pixels).
    assert (read[:, factor] == changed[factor]).all()
    if factor == 0:
        assert (read == changed).all()  # skin alone changed: everything else still reads right


@needs_sheets
def test_blank_noise_and_nan_sequences_do_not_crash_it(sprites):
    _, test, oracle = sprites
    truth = np.tile(test.labels[0, 1:], (3, 1))
    x = torch.stack([torch.zeros(8, 3, 64, 64), torch.rand(8, 3, 64, 64), torch.full((8, 3, 64, 64), float("nan"))])
    read = oracle.read(x, truth)
    assert read.shape == (3, 4) and read.min() >= 0 and read.max() <= 5


@needs_sheets
def test_bad_input_gets_one_line(sprites):
    _, test, oracle = sprites
    truth = test.labels[:2, 1:]
    with pytest.raises(SPYLError, match="reads N x T x 3 x 64 x 64"):
        oracle.read(torch.zeros(2, 8, 3, 32, 32), truth)
    with pytest.raises(SPYLError, match="one static label row"):
        oracle.read(torch.zeros(2, 8, 3, 64, 64), truth[:1])
    with pytest.raises(SPYLError, match="one static label row"):
        oracle.read(torch.zeros(2, 8, 3, 64, 64), truth + 6)
    small = PixelOracle(type(test)(test.x[:9], test.labels[:9], "sprites"))   # one character only
    with pytest.raises(SPYLError, match="no renders of character"):
        small.read(torch.zeros(1, 8, 3, 64, 64), test.labels[:1, 1:])


@needs_sheets
def test_real_frames_are_at_distance_zero_and_a_blend_of_poses_is_not(sprites):
    from oracle import REAL_FRAME_RMS
    _, test, oracle = sprites
    x = to_float(test.x[:9])                                    # the 9 actions of one character
    _, rms = oracle.read(x, test.labels[:9, 1:], distances=True)
    assert rms.shape == (9, 8) and rms.max() < 1e-3
    blend = 0.5 * (x[[0]] + x[[7]])                             # walking and slashing at once: two sets of arms
    read, rms = oracle.read(blend, test.labels[:1, 1:], distances=True)
    assert (rms > REAL_FRAME_RMS).mean() > 0.5

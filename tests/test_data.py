"""Data: the Sprites composer against the real parts, the legacy npy loader, the built-in set."""
import os
import shutil

import numpy as np
import pytest
import torch

import dataloader as D
from datasets import builtin as B
from datasets import characters as C
from datasets import sprites as S
from conftest import SHEETS, needs_sheets
from utils import SPYLError


# ---- the Sprites composer -------------------------------------------------------

def test_split_is_the_customary_one():
    train, test = C.split_characters()
    assert len(train) == 1000 and len(test) == 296
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(1296))
    assert train[:3].tolist() == np.random.RandomState(423).permutation(1296)[:3].tolist()


def test_labels_follow_the_character_index():
    labels = C.sequence_labels([0, 1295, 6 * 36 + 2 * 6 + 5])
    assert labels.shape == (27, 5)
    assert labels[:9, 0].tolist() == list(range(9))
    assert labels[0, 1:].tolist() == [0, 0, 0, 0]
    assert labels[9, 1:].tolist() == [5, 5, 5, 5]
    assert labels[18, 1:].tolist() == [1, 0, 2, 5]


@needs_sheets
def test_composer_matches_pil_frame_by_frame():
    from PIL import Image
    layers = S.load_parts(SHEETS)
    chars = [0, 777, 1295]
    x = C.compose(layers, chars)
    assert x.shape == (27, 8, 64, 64, 3) and x.dtype == np.uint8
    for n, c in enumerate(chars):
        skin, pants, top, hair = C.character_labels([c])[0]
        sheet = Image.new("RGBA", (832, 1344), "black")
        for layer, v in zip(C.LAYERS, (skin, pants, top, hair, 1)):
            sheet = Image.alpha_composite(sheet, Image.open(os.path.join(SHEETS, f"{layer}/{v}.png")).convert("RGBA"))
        ref = np.asarray(sheet)[..., :3]
        # walk-front frame 0 is column 8 of row 10; spellcast-left frame 6 repeats column 4 of row 1;
        # slash-right frame 7 repeats column 0 of row 15
        for action, t, row, col in ((0, 0, 10, 8), (4, 6, 1, 4), (8, 7, 15, 0), (3, 3, 2, 3)):
            want = ref[row * 64:(row + 1) * 64, col * 64:(col + 1) * 64]
            assert np.array_equal(x[9 * n + action, t], want), (c, action, t)


@needs_sheets
def test_composer_is_deterministic():
    layers = S.load_parts(SHEETS)
    assert np.array_equal(C.compose(layers, [5, 6]), C.compose(layers, [5, 6]))


def test_full_build_split_sizes_and_cache(sprites_dir):
    train, test = S.load_sprites(str(sprites_dir), None, download=False)
    assert (len(train), len(test)) == (9000, 2664)
    assert train.x.dtype == np.uint8 and train.x.shape[1:] == (8, 64, 64, 3)
    assert np.bincount(train.labels[:, 0]).tolist() == [1000] * 9
    first = C.split_characters()[0][0]
    assert train.labels[0].tolist() == [0, *C.character_labels([first])[0]]
    layers = S.load_parts(SHEETS)  # the cache holds what the composer makes
    assert np.array_equal(train.x[:9], C.compose(layers, [first]))
    assert np.array_equal(test.x[-9:], C.compose(layers, [C.split_characters()[1][-1]]))


@needs_sheets
def test_corrupt_and_truncated_parts_are_named(tmp_path):
    parts = tmp_path / "parts"
    shutil.copytree(SHEETS, parts)
    (parts / "hair/3.png").write_bytes((parts / "hair/3.png").read_bytes()[:5000])
    with pytest.raises(SPYLError, match="hair/3.png"):
        S.verify_parts(str(parts))
    with pytest.raises(SPYLError, match="hair/3.png.*truncated"):
        S.read_part(str(parts / "hair/3.png"), "hair/3.png")
    os.remove(parts / "body/2.png")
    with pytest.raises(SPYLError, match="body/2.png is missing"):
        S.verify_parts(str(parts))


def test_download_failure_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "PART_URL", "http://127.0.0.1:9/{}")  # nothing listens there
    with pytest.raises(SPYLError, match="cannot download.*--sheets"):
        S.download_parts(str(tmp_path / "parts"), timeout=2)
    assert not list((tmp_path / "parts").rglob("*.png"))


def test_auto_falls_back_to_builtin_loudly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(S, "PART_URL", "http://127.0.0.1:9/{}")
    monkeypatch.delenv(S.SHEETS_ENV, raising=False)
    train, _ = D.load_dataset("auto", str(tmp_path), None, chars=12)
    assert train.name == "builtin"
    assert "BUILT-IN" in capsys.readouterr().err
    with pytest.raises(SPYLError):
        D.load_dataset("sprites", str(tmp_path), None)


# ---- the pre-built files that circulate -------------------------------------------

def write_legacy(folder, n=6, scale=1.0, seed=0, **override):
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        labels = rng.integers(0, 6, (n, 4))
        actions = rng.integers(0, 9, n)
        arrays = {
            "X": (rng.integers(0, 256, (n, 8, 64, 64, 3)) / 255.0 * scale).astype(np.float32),
            "A": np.broadcast_to(np.eye(6, dtype=np.float32)[labels][:, None], (n, 8, 4, 6)),
            "D": np.broadcast_to(np.eye(9, dtype=np.float32)[actions][:, None], (n, 8, 9)),
        }
        arrays.update(override)
        for k, v in arrays.items():
            np.save(os.path.join(folder, f"sprites_{k}_{split}.npy"), v)
    return labels, actions


def test_legacy_npy_loads_and_converts(tmp_path):
    labels, actions = write_legacy(tmp_path)
    assert S.is_legacy_folder(str(tmp_path))
    train, test = S.load_sprites("unused", str(tmp_path))
    assert test.x.dtype == np.uint8 and test.x.shape == (6, 8, 64, 64, 3)
    assert test.labels[:, 0].tolist() == actions.tolist() and test.labels[:, 1:].tolist() == labels.tolist()
    raw = np.load(tmp_path / "sprites_X_test.npy")
    assert np.abs(test.batch(np.arange(6)).permute(0, 1, 3, 4, 2).numpy() - raw).max() < 0.5 / 255 + 1e-6


def test_legacy_npy_in_0_255_is_detected(tmp_path):
    write_legacy(tmp_path, scale=255.0)
    _, test = S.load_legacy_npy(str(tmp_path))
    raw = np.load(tmp_path / "sprites_X_test.npy")
    assert np.array_equal(test.x, np.rint(raw).astype(np.uint8))


@pytest.mark.parametrize("override,match", [
    ({"X": np.zeros((6, 8, 32, 32, 3), np.float32)}, "shape"),
    ({"D": np.zeros((6, 8, 7), np.float32)}, "shape"),
    ({"X": np.full((6, 8, 64, 64, 3), 300.0, np.float32)}, "outside"),
    ({"X": np.full((6, 8, 64, 64, 3), np.nan, np.float32)}, "NaN"),
])
def test_legacy_npy_bad_arrays(tmp_path, override, match):
    write_legacy(tmp_path, **override)
    with pytest.raises(SPYLError, match=match):
        S.load_legacy_npy(str(tmp_path))


def test_legacy_npy_missing_file(tmp_path):
    write_legacy(tmp_path)
    os.remove(tmp_path / "sprites_A_test.npy")
    with pytest.raises(SPYLError, match="sprites_A_test.npy is missing"):
        S.load_legacy_npy(str(tmp_path))


# ---- the built-in set ---------------------------------------------------------------

def test_builtin_shapes_labels_determinism(builtin_small):
    train, test = builtin_small
    assert train.x.shape[1:] == (8, 64, 64, 3) and train.x.dtype == np.uint8
    assert len(train) % 9 == 0 and len(test) % 9 == 0
    assert train.labels.min() == 0 and train.labels[:, 0].max() == 8 and train.labels[:, 1:].max() <= 5
    again, _ = B.load_builtin(chars=24)
    assert np.array_equal(again.x, train.x)


def test_builtin_classes_are_visibly_different():
    layers = B.builtin_layers()
    x = C.compose(layers, [0, 216, 36, 6, 1])  # base character, then each factor changed by one
    base = x[:9].astype(int)
    for k in range(1, 5):  # each static factor changes many pixels of every frame
        changed = (np.abs(x[9 * k:9 * k + 9].astype(int) - base).sum(-1) > 60).sum(axis=(2, 3))
        assert changed.min() >= 10, k
    for a in range(9):  # every action differs from every other one
        for b in range(a + 1, 9):
            assert (np.abs(base[a] - base[b]).sum(-1) > 60).sum() > 100, (a, b)
    frames_move = (np.abs(np.diff(base, axis=1)).sum(-1) > 60).sum(axis=(2, 3))
    assert (frames_move.sum(1) > 50).all()  # every action moves over its 8 frames


def test_batches_cover_each_epoch_and_resume_exactly():
    b = D.batch_indices(100, 16, seed=3, epoch=2)
    assert len(b) == 6 and len(np.unique(np.concatenate(b))) == 96
    assert all(np.array_equal(u, v) for u, v in zip(b, D.batch_indices(100, 16, seed=3, epoch=2)))
    assert not np.array_equal(b[0], D.batch_indices(100, 16, seed=3, epoch=3)[0])


def test_prefetch_yields_every_batch_in_order(builtin_small):
    train, _ = builtin_small
    idx = D.batch_indices(len(train), 8, 0, 0)
    got = list(D.prefetch(train, idx, "cpu"))
    assert len(got) == len(idx) and got[0].shape == (8, 8, 3, 64, 64)
    assert np.allclose(got[3].numpy(), train.batch(idx[3]).numpy())


def mapped_rss_mib(path):
    """Resident MiB of this process's mappings of the file at path (Linux /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5:  # a mapping's header line
                inside = len(head) >= 6 and os.path.realpath(head[-1]) == os.path.realpath(path)
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total / 1024


def test_batches_leave_the_memory_mapped_file_unmapped(sprites_dir):
    """Reading batches drops the file's pages from this process's resident memory, so an
    epoch does not leave the whole data set counted in the RSS of training."""
    _, test = S.load_sprites(str(sprites_dir), None, download=False)
    path = os.path.join(sprites_dir, "sprites", "x_test.npy")
    assert int(test.x[:, :, ::8].max()) > 0  # touch every page, as an epoch would
    assert mapped_rss_mib(path) > 0.9 * test.x.nbytes / 2**20
    idx = np.array([0, 5, 17, len(test) - 1])
    x = test.batch(idx)
    assert mapped_rss_mib(path) < 0.1 * test.x.nbytes / 2**20
    assert torch.equal(x, torch.from_numpy(np.array(test.x[idx])).permute(0, 1, 4, 2, 3).float() / 255)

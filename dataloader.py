"""Sequence data sets, one door to all of them (`load_dataset`).

Here: the Sprites benchmark, composed from the real LPC sprite-sheet parts, and a
built-in procedural set that needs nothing from outside. Both are stored as uint8
arrays N x T x H x W x C with integer labels N x 5 (action 0..8, then skin, pants,
top, hair 0..5 each) and become float batches B x T x C x H x W in [0, 1] only when a
batch is taken. The other modalities live one module per data set in `datasets/`
(time series: ETTh1, Beijing air quality, PhysioNet 2012; speech: FSDD), which this
module imports and which never import it.
"""
import json
import mmap
import os
import queue
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import torch

from datasets import airquality, etth1, fsdd, physionet
from utils import SPYLError, atomic_write, sha256_file

TIMESERIES = {m.NAME: m for m in (etth1, airquality, physionet)}
AUDIO = {fsdd.NAME: fsdd}
DATASETS = ("auto", "sprites", "builtin", *TIMESERIES, *AUDIO)

ACTIONS = ("walk", "spellcast", "slash")
DIRECTIONS = ("front", "left", "right")
ACTION_NAMES = tuple(f"{a}-{d}" for a in ACTIONS for d in DIRECTIONS)  # label = 3 * action + direction
ATTRIBUTES = ("skin", "pants", "top", "hair")
LABEL_NAMES = ("action",) + ATTRIBUTES
N_CLASSES = (9, 6, 6, 6, 6)
N_CHARACTERS = 6 ** 4
N_TRAIN_CHARACTERS = 1000
FRAMES, SIZE = 8, 64

# Where each action lives on an LPC sheet (13 columns x 21 rows of 64 x 64 frames):
# the first row of its group of four (back, left, front, right) and its 8 columns.
SHEET_ROWS = {"spellcast": 0, "walk": 8, "slash": 12}
FACING_OFFSET = {"front": 2, "left": 1, "right": 3}
SHEET_COLUMNS = {"walk": (8, 1, 2, 3, 4, 5, 6, 7), "spellcast": (0, 1, 2, 3, 4, 5, 4, 6), "slash": (0, 1, 2, 3, 4, 5, 4, 0)}
SHEET_SHAPE = (1344, 832)

PART_URL = "https://raw.githubusercontent.com/YingzhenLi/Sprites/master/{}"
PART_SHA256 = {
    "body/0.png": "27d1ac78db37c42f35a20d15c42705efc5e58d47c236cc01423879d4f797f151",
    "body/1.png": "1535e9228357b884df80f777a0d1dac10ac35e550e4d8d077105ccad014a1460",
    "body/2.png": "7c241033b4897501cb3721b6c3a9ebfa94b13db10a539edbd9bcc3e0c2a4bcb9",
    "body/3.png": "055f5aa33fc112d8444b42fce2cf50608a9fbbf2466c54ceaa46c777589a717a",
    "body/4.png": "57f3b9c510482379aba9a32fc0de7d48e9cbe3dc40f2447283547f773b77ca72",
    "body/5.png": "91e49453aeab5ebbb4fd2b48253812895dcfb4cb1829b84e24425c66de8f04ff",
    "bottomwear/0.png": "4ec356c488e272fde2d2d0d722b12a80217871e41161d43ba784caf243969ec2",
    "bottomwear/1.png": "0674312eaa4ab548f8bb31ef95d7dbd46b41555758cec51bd6c3e9fac9a0f936",
    "bottomwear/2.png": "3b464feb0d20ff34b0ca2a6d1fd00766ad86e2229c3d56ff91379fe27588a893",
    "bottomwear/3.png": "b366e84ea0519d06cf693f51e0ee2f9ac32b3132d27c75dfdc4b6f52fca072de",
    "bottomwear/4.png": "4ed7e7702e4f50b9692c0043be04b7296a108d85ea97230fb50d13c150d98771",
    "bottomwear/5.png": "a5c5e7e33f13fe5ad37b5836a5a74fb0d2094a0877c2146961b88688ff85840d",
    "topwear/0.png": "b917edcf2b3c35d51ef57a6fad67557c5edf048785bea29db09a640d09ac9a90",
    "topwear/1.png": "e33c6cb31ed1268a2c0dc73b665b1c9b9420e22baf3321880222bdb22682368b",
    "topwear/2.png": "2b9b8fefa08894b7ea536cd62b86d494aefe6e54495c5c1d83460827b13b6448",
    "topwear/3.png": "807f5b628592f6747e2814be9435963069dba6c360577168c02f57bbe903433d",
    "topwear/4.png": "b51b17878503877e179ce4f9231713bf2b2d2d666c3ec9ee29f4e784469867a2",
    "topwear/5.png": "1b6049d43f83ebfda857cc405d1936ac9fd80be480fa6ad239024a6a75ad0372",
    "hair/0.png": "e4007b0635a239ad16cdebfe90759349ccc73dfc6836c9d19625714be185f43d",
    "hair/1.png": "fa6369f84d3310705df6d8ca8c9d515a7d211e73d2826c50a9cb5bb285652c66",
    "hair/2.png": "1b8046752be7233e829ebe9b11048e171d8d181ee6f68e07042b34f57bb8af0d",
    "hair/3.png": "333783285c5fd94ff434ae5000d2da39aac7940269f173119eaa70d34c8acfa1",
    "hair/4.png": "24df8e9b291cbd444f6c4d12d35b3d43d909cd13f04e6401e0fd8ab10216d5a2",
    "hair/5.png": "4dd471cc20e0b1cf71adcaab01c88598767e5cfe680adacdf560ca91574f17ae",
    "shoes/1.png": "d56a561616a20a12030d2d40a52eeec63e6d048871bf3b6994221869362151f1",
}
# Layers from bottom to top; each static factor has six variants, shoes are fixed.
LAYERS = ("body", "bottomwear", "topwear", "hair", "shoes")
SHEETS_ENV = "SPYL_SPRITES"
LEGACY_FILES = ("sprites_X_train.npy", "sprites_X_test.npy", "sprites_A_train.npy",
                "sprites_A_test.npy", "sprites_D_train.npy", "sprites_D_test.npy")


# ---- the data set object ---------------------------------------------------

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


def batch_indices(n, batch_size, seed, epoch, drop_last=True):
    """The shuffled batches of one epoch as index arrays; a pure function of (seed, epoch),
    so a resumed run sees exactly the batches it would have seen."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [np.sort(order[i:i + batch_size]) for i in range(0, stop, batch_size)]


def prefetch(data, batches, device, depth=2):
    """Yield data.batch(idx) for each idx, preparing the next ones in a background thread,
    so the training step never waits for indexing and copying."""
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            for idx in batches:
                if stop.is_set():
                    return
                q.put(data.batch(idx, device))
        except BaseException as e:  # handed to the consumer, raised there
            q.put(e)
        q.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


# ---- composing characters from layered sheets ----------------------------------

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


def sheet_frames(sheet):
    """An LPC sheet (1344 x 832 x 4 uint8) -> the 72 frames used, 9 x 8 x 64 x 64 x 4,
    actions in label order (walk, spellcast, slash) x (front, left, right)."""
    out = np.empty((9, FRAMES, SIZE, SIZE, 4), np.uint8)
    for a, action in enumerate(ACTIONS):
        for d, facing in enumerate(DIRECTIONS):
            r = (SHEET_ROWS[action] + FACING_OFFSET[facing]) * SIZE
            for t, c in enumerate(SHEET_COLUMNS[action]):
                out[3 * a + d, t] = sheet[r:r + SIZE, c * SIZE:(c + 1) * SIZE]
    return out


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


# ---- the real sprite-sheet parts ---------------------------------------------------

def read_part(path, name=None):
    """Read one sheet as 1344 x 832 x 4 uint8 RGBA, or fail naming the file and the fault."""
    from PIL import Image
    name = name or path
    try:
        with Image.open(path) as im:
            im.load()
            sheet = np.asarray(im.convert("RGBA"))
    except FileNotFoundError:
        raise SPYLError(f"sprite part {name} is missing from {os.path.dirname(path) or '.'}") from None
    except Exception as e:  # PIL raises many types for damaged files
        raise SPYLError(f"sprite part {name} is truncated or not a PNG ({type(e).__name__}: {str(e)[:80]}); delete it and fetch it again") from None
    if sheet.shape[:2] != SHEET_SHAPE:
        raise SPYLError(f"sprite part {name} is {sheet.shape[1]}x{sheet.shape[0]} pixels, expected 832x1344 (13 x 21 frames of 64x64)")
    return sheet


def verify_parts(folder):
    """Check every needed part in folder against its SHA-256; name the first bad one."""
    for rel, digest in PART_SHA256.items():
        path = os.path.join(folder, rel)
        if not os.path.isfile(path):
            raise SPYLError(f"sprite part {rel} is missing from {folder}")
        if sha256_file(path) != digest:
            raise SPYLError(f"sprite part {rel} in {folder} is corrupt or a different file (SHA-256 mismatch); replace it with the one from github.com/YingzhenLi/Sprites")


def download_parts(folder, timeout=10):
    """Fetch the 25 needed parts from github.com/YingzhenLi/Sprites into folder, each
    verified and written atomically."""
    for i, (rel, digest) in enumerate(PART_SHA256.items()):
        path = os.path.join(folder, rel)
        if os.path.isfile(path) and sha256_file(path) == digest:
            continue
        print(f"downloading sprite part {i + 1}/{len(PART_SHA256)}: {rel}", file=sys.stderr)
        try:
            with urllib.request.urlopen(PART_URL.format(rel), timeout=timeout) as r:
                data = r.read()
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise SPYLError(f"cannot download the Sprites parts ({reason}); pass --sheets FOLDER "
                            f"(or set {SHEETS_ENV}) to a copy of github.com/YingzhenLi/Sprites, or put the parts in {folder}") from None
        import hashlib
        if hashlib.sha256(data).hexdigest() != digest:
            raise SPYLError(f"downloaded {rel} does not match its SHA-256; the server sent something else, try again later")
        atomic_write(path, lambda f: f.write(data))


def load_parts(folder):
    """Read and verify the parts in folder -> layers for compose()."""
    verify_parts(folder)
    layers = [np.stack([sheet_frames(read_part(os.path.join(folder, f"{layer}/{v}.png"), f"{layer}/{v}.png")) for v in range(6)])
              for layer in LAYERS[:4]]
    layers.append(sheet_frames(read_part(os.path.join(folder, "shoes/1.png"), "shoes/1.png"))[None])
    return layers


def is_legacy_folder(folder):
    """True if folder holds the pre-built sprites_*.npy files."""
    return bool(folder) and os.path.isfile(os.path.join(folder, LEGACY_FILES[0]))


def load_sprites(data_dir="data", sheets=None, download=True):
    """The real Sprites (train, test), built once from the parts and cached under data_dir.

    Parts come from, in order: `sheets` (a folder; a folder of the pre-built
    sprites_*.npy files is detected and converted instead), the environment
    variable SPYL_SPRITES, a cached copy in data_dir/sprites/parts, a download.
    """
    sheets = sheets or os.environ.get(SHEETS_ENV)
    if sheets and not os.path.isdir(sheets):
        raise SPYLError(f"sprite folder {sheets} does not exist")
    if is_legacy_folder(sheets):
        return load_legacy_npy(sheets)
    cache = os.path.join(data_dir, "sprites")
    meta_path = os.path.join(cache, "meta.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            if json.load(f).get("parts") == PART_SHA256:
                return _load_cached(cache)
    parts = sheets or os.path.join(cache, "parts")
    if not sheets and download:
        download_parts(parts)
    print(f"building Sprites from the parts in {parts} (once; cached in {cache})", file=sys.stderr)
    train, test = build_split(load_parts(parts), "sprites")
    for split, d in (("train", train), ("test", test)):
        atomic_write(os.path.join(cache, f"x_{split}.npy"), lambda f: np.save(f, d.x))
        atomic_write(os.path.join(cache, f"y_{split}.npy"), lambda f: np.save(f, d.labels))
    atomic_write(meta_path, lambda f: json.dump({"parts": PART_SHA256, "train": len(train), "test": len(test)}, f, indent=1), mode="w")
    return train, test


def _load_cached(cache):
    out = []
    for split in ("train", "test"):
        try:
            x = np.load(os.path.join(cache, f"x_{split}.npy"), mmap_mode="r")  # pages are read as batches touch them
            y = np.load(os.path.join(cache, f"y_{split}.npy"))
        except (OSError, ValueError) as e:
            raise SPYLError(f"the cached Sprites in {cache} are damaged ({e}); delete {cache} to rebuild") from None
        _check_arrays(x, y, cache)
        out.append(SequenceData(x, y, "sprites"))
    return tuple(out)


def _check_arrays(x, y, where):
    if x.dtype != np.uint8 or x.ndim != 5 or x.shape[1:] != (FRAMES, SIZE, SIZE, 3) or y.shape != (len(x), 5):
        raise SPYLError(f"arrays in {where} have shapes {x.shape} {x.dtype} and {y.shape}, expected N x 8 x 64 x 64 x 3 uint8 and N x 5")


# ---- the pre-built files that circulate -------------------------------------------

def load_legacy_npy(folder, chunk=500):
    """Load sprites_{X,A,D}_{train,test}.npy (X float in [0, 1] or 0..255, A N x 8 x 4 x 6
    one-hot, D N x 8 x 9 one-hot) and convert to uint8 frames and integer labels."""
    out = []
    for split in ("train", "test"):
        arrays = {}
        for key in "XAD":
            path = os.path.join(folder, f"sprites_{key}_{split}.npy")
            try:
                arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                raise SPYLError(f"{path} is missing; a pre-built Sprites folder needs all of {', '.join(LEGACY_FILES)}") from None
            except (ValueError, OSError, EOFError) as e:
                raise SPYLError(f"{path} is not a readable .npy array ({str(e)[:80]})") from None
        X, A, D = arrays["X"], arrays["A"], arrays["D"]
        n = X.shape[0] if X.ndim else -1
        expect = {"X": (n, FRAMES, SIZE, SIZE, 3), "A": (n, FRAMES, 4, 6), "D": (n, FRAMES, 9)}
        for key, shape in expect.items():
            if arrays[key].shape != shape:
                raise SPYLError(f"sprites_{key}_{split}.npy has shape {arrays[key].shape}, expected {shape}")
            if not (np.issubdtype(arrays[key].dtype, np.number) or arrays[key].dtype == bool):
                raise SPYLError(f"sprites_{key}_{split}.npy has dtype {arrays[key].dtype}, expected numbers")
        x = np.empty((n,) + expect["X"][1:], np.uint8)
        scale = None
        for i in range(0, n, chunk):
            block = np.asarray(X[i:i + chunk], dtype=np.float32)
            if not np.isfinite(block).all():
                raise SPYLError(f"sprites_X_{split}.npy contains NaN or infinite values")
            if scale is None:  # 0..1 floats are the norm; 0..255 files are detected and converted
                scale = 255.0 if float(block.max(initial=0)) <= 1.0 else 1.0
            if block.min(initial=0) < 0 or block.max(initial=0) * scale > 255.5:
                raise SPYLError(f"sprites_X_{split}.npy has values outside [0, 1] and [0, 255]; expected images")
            x[i:i + chunk] = np.rint(block * scale).astype(np.uint8)
        labels = np.concatenate([np.argmax(D[:, 0], axis=-1)[:, None], np.argmax(A[:, 0], axis=-1)], axis=1).astype(np.int64)
        out.append(SequenceData(x, labels, "sprites"))
    return tuple(out)


# ---- the built-in procedural set ------------------------------------------------

SKIN = [(255, 224, 189), (205, 150, 95), (120, 70, 40), (110, 190, 100), (120, 150, 230), (235, 120, 200)]
PANTS = [(30, 40, 150), (150, 30, 30), (40, 120, 40), (210, 190, 60), (90, 90, 90), (250, 250, 250)]
TOPS = [(220, 60, 60), (60, 170, 220), (240, 160, 30), (130, 60, 170), (30, 120, 90), (245, 245, 160)]
HAIR = [(30, 20, 10), (250, 220, 90), (200, 80, 20), (230, 230, 230), (60, 200, 60), (180, 40, 180)]
EXTRAS = (60, 40, 30)  # shoes


class _Canvas:
    """A 64 x 64 RGBA frame with a few primitives (disc, thick line, box)."""

    yy, xx = np.mgrid[0:SIZE, 0:SIZE]

    def __init__(self):
        self.rgba = np.zeros((SIZE, SIZE, 4), np.uint8)

    def paint(self, mask, color):
        self.rgba[mask] = (*color, 255)

    def disc(self, cx, cy, r, color):
        self.paint((self.xx - cx) ** 2 + (self.yy - cy) ** 2 <= r * r, color)

    def box(self, x0, y0, x1, y1, color):
        self.paint((self.xx >= x0) & (self.xx <= x1) & (self.yy >= y0) & (self.yy <= y1), color)

    def line(self, x0, y0, x1, y1, width, color):
        # distance from each pixel to the segment
        px, py, dx, dy = self.xx - x0, self.yy - y0, x1 - x0, y1 - y0
        t = np.clip((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        self.paint((px - t * dx) ** 2 + (py - t * dy) ** 2 <= (width / 2) ** 2, color)


def _pose(action, t):
    """Limb angles (radians from straight down) and bob for frame t of an action."""
    phase = 2 * np.pi * t / FRAMES
    if action == "walk":
        swing = 0.55 * np.sin(phase)
        return {"leg": swing, "arm_l": -swing, "arm_r": swing, "bob": int(round(abs(np.sin(phase)))), "glow": 0, "sword": False}
    if action == "spellcast":
        raise_ = (0.0, 0.5, 1.2, 2.0, 2.6, 2.8, 2.6, 1.4)[t]
        return {"leg": 0.0, "arm_l": raise_, "arm_r": raise_, "bob": 0, "glow": 1 + t // 3 if t >= 3 else 0, "sword": False}
    sweep = (3.0, 2.6, 2.0, 1.2, 0.5, 0.1, 0.5, 3.0)[t]  # slash: the sword arm sweeps down
    return {"leg": 0.25 * np.sin(phase), "arm_l": 0.2, "arm_r": sweep, "bob": 0, "glow": 0, "sword": True}


def _draw(layer, variant, action, facing, t):
    """One RGBA frame of one layer of the built-in character (faces left in profile)."""
    c = _Canvas()
    p = _pose(action, t)
    side = facing != "front"
    cx, y0 = 32, 6 + p["bob"]
    hip_y, shoulder_y = y0 + 32, y0 + 17
    half = 4 if side else 7  # torso half-width: narrow in profile

    def end_of(x, y, angle, length):
        # in profile a limb swings forward (to the left); facing front it lifts outwards
        direction = -1 if side else (1 if x > cx else -1)
        return x + direction * np.sin(angle) * length, y + np.cos(angle) * length

    legs = [(cx - 1, p["leg"]), (cx + 1, -p["leg"])] if side else [(cx - 3, 0.5 * p["leg"]), (cx + 3, -0.5 * p["leg"])]
    arms = [(cx, p["arm_l"]), (cx, p["arm_r"])] if side else [(cx - half - 2, p["arm_l"]), (cx + half + 2, p["arm_r"])]
    if layer == "body":  # head, arms, hands, eyes, and what the hands hold
        skin = SKIN[variant]
        c.disc(cx, y0 + 9, 7, skin)
        hands = []
        for x, a in arms:
            hands.append(end_of(x, shoulder_y + 1, a, 13))
            c.line(x, shoulder_y + 1, *hands[-1], 4, skin)
        for x, _ in legs:
            c.box(x - 2, hip_y + 12, x + 2, hip_y + 16, skin)
        for ex in ((cx - 5,) if side else (cx - 4, cx + 3)):
            c.box(ex, y0 + 8, ex + 1, y0 + 9, (0, 0, 0))
        if p["sword"]:
            hx, hy = hands[1]
            c.line(hx, hy, *end_of(arms[1][0], hy, p["arm_r"], 14), 2, (200, 200, 215))
        for hx, hy in hands if p["glow"] else ():
            c.disc(hx, hy, 1 + p["glow"], (255, 240, 120))
    elif layer == "bottomwear":
        for x, a in legs:
            c.line(x, hip_y, *end_of(x, hip_y, a, 15), 5, PANTS[variant])
    elif layer == "topwear":
        c.box(cx - half, shoulder_y, cx + half, hip_y + 1, TOPS[variant])
        for x, a in arms:
            c.line(x, shoulder_y + 1, *end_of(x, shoulder_y + 1, a, 6), 5, TOPS[variant])
    elif layer == "hair":  # colour by variant, and three styles: short, long, top knot
        color = HAIR[variant]
        c.paint(((c.xx - cx) ** 2 + (c.yy - y0 - 9) ** 2 <= 64) & (c.yy <= y0 + 5), color)
        if variant % 3 == 1 and side:
            c.box(cx + 2, y0 + 5, cx + 7, y0 + 16, color)
        elif variant % 3 == 1:
            c.box(cx - 8, y0 + 5, cx - 6, y0 + 16, color)
            c.box(cx + 6, y0 + 5, cx + 8, y0 + 16, color)
        elif variant % 3 == 2:
            c.disc(cx + (2 if side else 0), y0, 3, color)
    else:  # shoes
        for x, a in legs:
            fx, _ = end_of(x, hip_y, a, 15)
            c.box(fx - 3 - (2 if side else 0), hip_y + 14, fx + 3, hip_y + 16, EXTRAS)
    if facing == "right":  # right is the mirror image of left
        c.rgba = c.rgba[:, ::-1].copy()
    return c.rgba


def builtin_layers():
    """The built-in set's layers in compose() form: four factors x six variants, plus shoes."""
    out = []
    for layer in LAYERS:
        n = 1 if layer == "shoes" else 6
        frames = np.empty((n, 9, FRAMES, SIZE, SIZE, 4), np.uint8)
        for v in range(n):
            for a, action in enumerate(ACTIONS):
                for d, facing in enumerate(DIRECTIONS):
                    for t in range(FRAMES):
                        frames[v, 3 * a + d, t] = _draw(layer, v, action, facing, t)
        out.append(frames)
    return out


def load_builtin(chars=None):
    """The built-in procedural set (train, test): Sprites' factor structure, drawn by us.

    chars: use only this many characters (for tests); default all 1296."""
    return build_split(builtin_layers(), "builtin", chars)


def load_dataset(name="auto", data_dir="data", sheets=None, chars=None, data_root=None):
    """(train, test) for 'sprites', 'builtin', 'auto' (Sprites if they can be had, else the
    built-in set after one loud line), a time-series set (etth1, airquality, physionet) or
    speech (fsdd), read from data_root or downloaded (their other splits: `load_splits`)."""
    if name in TIMESERIES or name in AUDIO:
        splits = load_splits(name, data_root)
        return splits["train"], splits["test"]
    if name == "builtin":
        return load_builtin(chars)
    if name not in ("sprites", "auto"):
        raise SPYLError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    try:
        return load_sprites(data_dir, sheets)
    except SPYLError as e:
        if name == "sprites":
            raise
        print(f"WARNING: real Sprites unavailable ({e}) -- training on the BUILT-IN procedural set instead", file=sys.stderr)
        return load_builtin(chars)


def load_splits(name, data_root=None):
    """{"train", ("valid",) "test", "mean", "std"} of a time-series or speech set, as its protocol splits it."""
    modules = {**TIMESERIES, **AUDIO}
    if name not in modules:
        raise SPYLError(f"unknown dataset {name!r}; use one of {', '.join(modules)}")
    return modules[name].load(data_root or None)

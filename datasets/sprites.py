"""The Sprites benchmark (Li & Mandt, ICML 2018), composed from the real LPC sprite-sheet parts
(downloaded once from github.com/YingzhenLi/Sprites, checked against SHA-256 sums) or read
from the pre-built sprites_*.npy files that circulate among researchers.
"""
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np

from datasets.characters import ACTIONS, DIRECTIONS, FRAMES, LAYERS, SIZE, SequenceData, build_split
from utils import SPYLError, atomic_write, sha256_file

NAME = "sprites"

# Where each action lives on an LPC sheet (13 columns x 21 rows of 64 x 64 frames):
# the first row of its group of four (back, left, front, right) and its 8 columns.
SHEET_ROWS = {"spellcast": 0, "walk": 8, "slash": 12}
FACING_OFFSET = {"front": 2, "left": 1, "right": 3}
SHEET_COLUMNS = {"walk": (8, 1, 2, 3, 4, 5, 6, 7), "spellcast": (0, 1, 2, 3, 4, 5, 4, 6), "slash": (0, 1, 2, 3, 4, 5,
                                                                                                    4, 0)}
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
SHEETS_ENV = "SPYL_SPRITES"
LEGACY_FILES = ("sprites_X_train.npy", "sprites_X_test.npy", "sprites_A_train.npy",
                "sprites_A_test.npy", "sprites_D_train.npy", "sprites_D_test.npy")


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
        raise SPYLError(f"sprite part {name} is truncated or not a PNG ({type(e).__name__}: {str(e)[:80]}); delete "
                        "it and fetch it again") from None
    if sheet.shape[:2] != SHEET_SHAPE:
        raise SPYLError(f"sprite part {name} is {sheet.shape[1]}x{sheet.shape[0]} pixels, expected 832x1344 (13 x 21 "
                        "frames of 64x64)")
    return sheet


def verify_parts(folder):
    """Check every needed part in folder against its SHA-256; name the first bad one."""
    for rel, digest in PART_SHA256.items():
        path = os.path.join(folder, rel)
        if not os.path.isfile(path):
            raise SPYLError(f"sprite part {rel} is missing from {folder}")
        if sha256_file(path) != digest:
            raise SPYLError(f"sprite part {rel} in {folder} is corrupt or a different file (SHA-256 mismatch); "
                            "replace it with the one from github.com/YingzhenLi/Sprites")


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
                            f"(or set {SHEETS_ENV}) to a copy of github.com/YingzhenLi/Sprites, or put the parts in "
                            f"{folder}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise SPYLError(f"downloaded {rel} does not match its SHA-256; the server sent something else, try again "
                            "later")
        atomic_write(path, lambda f: f.write(data))


def load_parts(folder):
    """Read and verify the parts in folder -> layers for compose()."""
    verify_parts(folder)
    layers = [np.stack([sheet_frames(read_part(os.path.join(folder, f"{layer}/{v}.png"),
                                               f"{layer}/{v}.png")) for v in range(6)])
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
    atomic_write(meta_path, lambda f: json.dump({"parts": PART_SHA256, "train": len(train), "test": len(test)}, f,
                                                indent=1), mode="w")
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
        raise SPYLError(f"arrays in {where} have shapes {x.shape} {x.dtype} and {y.shape}, expected N x 8 x 64 x 64 "
                        "x 3 uint8 and N x 5")


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
                raise SPYLError(f"{path} is missing; a pre-built Sprites folder needs all of "
                                f"{', '.join(LEGACY_FILES)}") from None
            except (ValueError, OSError, EOFError) as e:
                raise SPYLError(f"{path} is not a readable .npy array ({str(e)[:80]})") from None
        X, A, D = arrays["X"], arrays["A"], arrays["D"]
        n = X.shape[0] if X.ndim else -1
        expect = {"X": (n, FRAMES, SIZE, SIZE, 3), "A": (n, FRAMES, 4, 6), "D": (n, FRAMES, 9)}
        for key, shape in expect.items():
            if arrays[key].shape != shape:
                raise SPYLError(f"sprites_{key}_{split}.npy has shape {arrays[key].shape}, expected {shape}")
            dtype = arrays[key].dtype
            if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == bool):
                raise SPYLError(f"sprites_{key}_{split}.npy has dtype {dtype}, expected real numbers")
        for key in "AD":  # labels: one-hot rows (the first frame's; every frame carries the same)
            first = np.asarray(arrays[key][:, 0], dtype=np.float32)
            if first.size and not (np.isin(first, (0.0, 1.0)).all() and (first.sum(-1) == 1).all()):
                raise SPYLError(f"sprites_{key}_{split}.npy holds labels that are not one-hot (each row one 1, the "
                                "rest 0)")
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
        labels = np.concatenate([np.argmax(D[:, 0], axis=-1)[:, None], np.argmax(A[:, 0], axis=-1)],
                                axis=1).astype(np.int64)
        out.append(SequenceData(x, labels, "sprites"))
    return tuple(out)

"""Small shared helpers: errors, safe file writes, checkpoint loading, devices, images."""
import argparse
import dataclasses
import hashlib
import io
import math
import os
import pickle
import random
import shutil
import sys
import tempfile
import zipfile

import numpy as np
import torch


class SPYLError(Exception):
    """A problem the user can fix; scripts print it as one line and exit non-zero."""


def run_main(main, argv=None):
    """Call main() (main(argv) if argv is given); turn an SPYLError into one line on stderr and exit
    status 2, Ctrl-C into status 130."""
    try:
        main() if argv is None else main(argv)
    except SPYLError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


# ---- flags and config values --------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (an SPYLError: exit status 2), not a usage block, and
    whose --help shows each flag's default."""

    def __init__(self, *args, **kw):
        super().__init__(*args, formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kw)

    def error(self, message):
        raise SPYLError(f"{message}; see --help")


class Rule:
    """What values a setting may take: a number range (between) or a set of choices (one_of).

    As an argparse `type` it parses and checks a flag's text; `check` checks a value that came
    from elsewhere (a preset, a checkpoint) and returns what is wrong, or None."""

    def __init__(self, kind, low=None, high=None, choices=None):
        self.kind, self.low, self.high, self.choices = kind, low, high, choices

    def describe(self):
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        what = "an integer" if self.kind is int else "a number"
        if self.high is None:
            return f"{what} >= {self.low}"
        return f"{what} from {self.low} to {self.high}"

    def check(self, value):
        if self.choices is not None:
            return None if value in self.choices else f"must be {self.describe()}, got {value!r}"
        number = not isinstance(value, bool) and isinstance(value, int if self.kind is int else (int, float))
        if number and math.isfinite(value) and value >= self.low and (self.high is None or value <= self.high):
            return None
        return f"must be {self.describe()}, got {value!r}"

    def __call__(self, text):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None
        problem = self.check(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value


def between(low, high=None, kind=int):
    """Integers (or, with kind=float, finite numbers) from low to high inclusive; no high: no upper bound."""
    return Rule(kind, low, high)


def one_of(*choices):
    """One of the given values."""
    return Rule(str, choices=tuple(choices))


class ListOf(Rule):
    """A comma-separated list of values, each allowed by one Rule (an argparse type): '1e-3,3e-3'."""

    def __init__(self, rule):
        super().__init__(rule.kind, rule.low, rule.high, rule.choices)
        self.one = rule

    def describe(self):
        return f"comma-separated, each {self.one.describe()}"

    def check(self, values):
        return next((p for p in map(self.one.check, values) if p), None)

    def __call__(self, text):
        return [self.one(part) for part in text.split(",")]


def check_fields(config, rules):
    """Check each field of a config dataclass that has a rule; raise one SPYLError naming the
    first bad field as its flag (s_dim -> --s-dim), its value and what is allowed."""
    for name, rule in rules.items():
        problem = rule.check(getattr(config, name))
        if problem:
            raise SPYLError(f"--{name.replace('_', '-')} ({name}) {problem}")


def check_bools(config):
    """Refuse a bool field holding anything but True or False (an edited checkpoint, say)."""
    for f in dataclasses.fields(config):
        if f.type in (bool, "bool") and not isinstance(getattr(config, f.name), bool):
            raise SPYLError(f"--{f.name.replace('_', '-')} ({f.name}) must be true or false, got "
                            f"{getattr(config, f.name)!r}")


# ---- files ------------------------------------------------------------------

def atomic_write(path, write_fn, mode="wb"):
    """Write a file through write_fn(f) into a temporary sibling, then rename it into place.

    Readers see the old file or the complete new one, never half of either; on
    any failure the temporary file is removed and the error says which path.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    except OSError as e:
        raise SPYLError(f"cannot write to {folder}: {e.strerror}; choose a writable folder") from None
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        raise SPYLError(f"could not write {path}: {e.strerror} (is the disk full or the folder read-only?)") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def atomic_torch_save(obj, path):
    """torch.save made atomic (see atomic_write)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def remove_stale_temporaries(folder):
    """Delete the temporary files that a killed atomic_write left in folder."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(".tmp-"):
                _remove_quietly(os.path.join(folder, name))


def check_writable(folder, need_bytes=0):
    """Fail early, with one line, if folder cannot be created or written or lacks need_bytes free."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise SPYLError(f"output folder {folder} is not writable ({e.strerror}); pass another folder") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise SPYLError(f"only {free / 2**20:.0f} MiB free in {folder}, need about {need_bytes / 2**20:.0f} MiB; "
                        "free some space or pass another folder")


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path, map_location="cpu"):
    """torch.load restricted to tensors and plain containers (weights_only=True).

    A pickled object file could run arbitrary code when loaded, so it is refused;
    missing, truncated and foreign files get one clear line each.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SPYLError(f"checkpoint {path} does not exist; train one with `python train.py --out {path}` or pass "
                        "--weights")
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (PK..); files from before PyTorch 1.6 are a bare pickle (0x80, the protocol byte)
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):
        raise SPYLError(f"{path} is not a PyTorch checkpoint (it is "
                        f"{'empty' if not head else 'neither a zip archive nor a pickle'}); pass a model file "
                        "written by train.py --out or SPYL.save")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise SPYLError(f"{path} holds pickled Python objects, not only tensors; refusing to load it because "
                            "unpickling can run code. Save a state dict (model.save) instead") from None
        raise SPYLError(f"{path} is truncated or corrupt ({str(e).splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError) as e:
        raise SPYLError(f"{path} is truncated, corrupt or not a PyTorch file ({type(e).__name__}); re-download or "
                        "re-train it") from None


# ---- devices and randomness ---------------------------------------------------

def pick_device(name="auto"):
    """'auto' -> cuda, then mps, then cpu; otherwise the named device, checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SPYLError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SPYLError(f"device {name!r} asked for but CUDA is not available here; use --device auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SPYLError(f"device {name!r} asked for but Apple MPS is not available here; use --device auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise SPYLError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_precision(name, device):
    """The autocast dtype for a precision name (auto, bf16, fp32) on a device, or None for plain
    fp32. auto: bf16 on CUDA devices that support it and on CPUs with bf16 units (AMX tiles or
    AVX512-BF16); fp32 elsewhere, where bf16 is emulated: measured on a 2-core CPU without them,
    a bf16 transposed convolution falls back to a slow reference kernel, tens of times slower."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name != "auto":
        raise SPYLError(f"unknown precision {name!r}; use auto, bf16 or fp32")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16_units() else None
    return None


def cpu_has_bf16_units():
    """True if this CPU computes bf16 natively (Linux: the amx_bf16 or avx512_bf16 flag)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast(device, amp_dtype, **kw):
    """torch.autocast to amp_dtype on device's type (a torch.device or its name); a no-op
    context when amp_dtype is None. kw go to torch.autocast (cache_enabled)."""
    return torch.autocast(torch.device(device).type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None,
                          **kw)


def peak_memory_mib(device):
    """Peak resident memory of this process (CPU) or peak allocated memory of the GPU, in MiB;
    None where the platform cannot say (Windows has no getrusage)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource  # Unix only: imported here so that every script still runs elsewhere
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # macOS reports bytes, Linux KiB


def seed_everything(seed):
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state():
    """The torch and NumPy RNG states as tensors and plain types (loadable with weights_only).

    Python's own `random` is not used by training, so it is not stored."""
    state = {"torch": torch.get_rng_state(), "numpy": _numpy_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state():
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached": float(cached)}


def set_rng_state(state):
    """Restore what rng_state returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- images -------------------------------------------------------------------

def to_uint8_image(x):
    """Tensor or array C x H x W (or H x W x C) in [0, 1] -> H x W x C uint8."""
    a = x.detach().float().cpu().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def sequence_grid(rows, pad=2):
    """rows: list of sequences (T x C x H x W in [0, 1]) -> one H x W x 3 uint8 image, a row each."""
    rows = [[to_uint8_image(f) for f in seq] for seq in rows]
    h, w = rows[0][0].shape[:2]
    T = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, T * (w + pad) + pad, 3), 255, np.uint8)
    for i, seq in enumerate(rows):
        for t, frame in enumerate(seq):
            y, x = pad + i * (h + pad), pad + t * (w + pad)
            grid[y:y + h, x:x + w] = frame[..., :3] if frame.shape[-1] >= 3 else frame
    return grid


def figure(*args, **kw):
    """A headless matplotlib figure and axes (plt.subplots arguments)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(*args, **kw)


def save_figure(fig, path, dpi=80):
    """Write a matplotlib figure as a PNG, atomically, and close it."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def save_png(array, path, scale=1):
    """Write an H x W x 3 uint8 array as a PNG (nearest-neighbour upscaled), atomically."""
    from PIL import Image
    img = Image.fromarray(array)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def save_labelled_grid(rows, labels, path, scale=2, label_width=220, marks=None, palette=False):
    """Write sequences a row each (as sequence_grid, upscaled) with a text label left of each row, as a PNG.
    marks: per row, None or one bool per frame; frames marked True get a red outline. label_width
    widens where a label needs more. palette: 256 colours, a third of the bytes for decoded frames
    (figures kept in the repository, whose size is budgeted)."""
    from PIL import Image, ImageDraw, ImageFont
    try:
        font = ImageFont.load_default(size=14)  # a scalable font where Pillow has FreeType
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    label_width = max([label_width] + [int(font.getlength(text)) + 12 for text in labels])
    grid = Image.fromarray(sequence_grid(rows))
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (label_width + grid.width, grid.height), "white")
    canvas.paste(grid, (label_width, 0))
    draw = ImageDraw.Draw(canvas)
    pad, h = 2, rows[0][0].shape[-2]
    for i, text in enumerate(labels):
        y = (pad + i * (h + pad) + h // 2) * scale
        draw.text((6, y - 8), text, fill="black", font=font)
    w = rows[0][0].shape[-1]
    for i, row_marks in enumerate(marks or []):
        for t, marked in enumerate(row_marks if row_marks is not None else []):
            if marked:
                x0, y0 = label_width + (pad + t * (w + pad)) * scale, (pad + i * (h + pad)) * scale
                draw.rectangle([x0 - 2, y0 - 2, x0 + w * scale + 1, y0 + h * scale + 1], outline=(220, 0, 0), width=3)
    if palette:
        canvas = canvas.quantize(256, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))

"""Find a data set's files: a folder the user points to, else a cached copy, else a download
from the public source, each file checked against its SHA-256 and written atomically."""
import hashlib
import os
import sys
import urllib.error
import urllib.request

from utils import SPYLError, atomic_write, sha256_file

DATA_ROOT_ENV = "SPYL_DATA_ROOT"


def data_root(given=None, default="data"):
    """The folder that holds (or will cache) the data sets: --data-root, else $SPYL_DATA_ROOT, else data/."""
    root = given or os.environ.get(DATA_ROOT_ENV) or default
    if (given or os.environ.get(DATA_ROOT_ENV)) and not os.path.isdir(root):
        raise SPYLError(f"data root {root} does not exist; pass --data-root to a folder that holds the data set's "
                        "folder")
    return root


def check_file(path, digest, name):
    """Fail in one line unless path exists and has the given SHA-256."""
    if not os.path.isfile(path):
        raise SPYLError(f"{name}: {path} is missing")
    if sha256_file(path) != digest:
        raise SPYLError(f"{name}: {path} is damaged or a different file (SHA-256 mismatch); delete it to download it "
                        f"again, or replace it with the file from the public source")


def download(url, path, name, digest=None, timeout=30):
    """Fetch url to path atomically (checked against digest when given); one line when offline."""
    print(f"downloading {name}: {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            data = r.read()
    except (urllib.error.URLError, OSError) as e:
        raise SPYLError(f"cannot download {name} ({getattr(e, 'reason', e)}); pass --data-root DIR (or set "
                        f"{DATA_ROOT_ENV}) to a folder holding a copy, see the README's data section") from None
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise SPYLError(f"downloaded {name} does not match its SHA-256; the server sent something else, try again "
                        "later")
    atomic_write(path, lambda f: f.write(data))


def listing_digest(files):
    """SHA-256 of a folder listing as `LC_ALL=C sha256sum * | sha256sum` prints it, from {file name: bytes}:
    how an archive is checked whose bytes differ between packers but whose files do not."""
    lines = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files, key=str.encode))
    return hashlib.sha256(lines.encode()).hexdigest()

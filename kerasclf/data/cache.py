"""Where downloaded data sets live, and downloads that never leave half-written files."""

import contextlib
import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from kerasclf.errors import DataError


def cache_dir(configured=None):
    """data.data_dir / --data-dir, else $KERASCLF_DATA, else ~/.cache/kerasclf."""
    root = configured or os.environ.get("KERASCLF_DATA") or Path.home() / ".cache" / "kerasclf"
    return Path(root).expanduser()


def fetch(url, directory, filename, md5=None, what="the data set", sha256=None):
    """Return directory/filename, downloading it first if needed (atomic rename on success).

    md5 / sha256: the expected digest of the download (a mismatch is refused)."""
    directory = Path(directory)
    target = directory / filename
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        for algorithm, expected in (("md5", md5), ("sha256", sha256)):
            if expected and _digest(tmp, algorithm) != expected:
                raise DataError(f"The download of {url} is corrupt ({algorithm} mismatch). Delete nothing; run again.")
        os.replace(tmp, target)
    except DataError:
        raise
    except Exception as exc:  # URLError, timeouts, HTTP errors: all mean "no file"
        raise DataError(
            f"{what} is not in {directory} and could not be downloaded from {url} "
            f"({type(exc).__name__}: {exc}). On a machine with network, download that file and "
            f"put it at {target}, or point KERASCLF_DATA / --data-dir at a folder that holds it."
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _digest(path, algorithm="md5"):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def readable_download(archive, url, what, errors=(OSError, EOFError, ValueError)):
    """Around reading a downloaded file: one of `errors` becomes a DataError that names the
    file and says how to get a good copy (a truncated download is the usual cause)."""
    try:
        yield
    except errors as exc:
        raise DataError(
            f"{archive} is not a readable {what} ({type(exc).__name__}: {exc}). It may be truncated "
            f"or another file: delete it to download it again from {url}."
        ) from None

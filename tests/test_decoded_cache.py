"""Issue 17, part 7: decoded images are cached beside the data set cache, keyed by the files
(path, size, mtime), the image size and the resize policy; stale entries are not used."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, class_image, write_image


def entries(cache):
    return sorted((cache / "decoded").glob("*.npz"))


def test_a_second_decode_of_unchanged_files_loads_the_cache(make_image_folder, tmp_path, caplog, monkeypatch):
    from kerasclf.data import images
    from kerasclf.data.images import decode_files

    root = make_image_folder(tmp_path / "imgs", {"a": 4, "b": 4}, size=(20, 16))
    paths = sorted(str(p) for p in root.rglob("*.png"))
    cache = tmp_path / "cache"
    first, kept = decode_files(paths, (8, 8), "crop", cache=cache)
    assert len(entries(cache)) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "_decode", no_decoding)
    with caplog.at_level(logging.INFO, logger="kerasclf"):
        second, kept2 = decode_files(paths, (8, 8), "crop", cache=cache)
    assert "from the cache" in caplog.text
    assert np.array_equal(first, second) and kept == kept2
    monkeypatch.undo()
    # another size or resize policy is another entry: never the 8x8 crop's pixels
    other, _ = decode_files(paths, (8, 8), "pad", cache=cache)
    assert len(entries(cache)) == 2 and not np.array_equal(other, first)


@pytest.mark.parametrize("change", ["rewrite", "touch", "remove"])
def test_a_stale_entry_is_not_used(make_image_folder, tmp_path, change, caplog):
    from kerasclf.data.images import decode_files

    root = make_image_folder(tmp_path / "imgs", {"a": 3, "b": 3}, size=(8, 8))
    paths = sorted(str(p) for p in root.rglob("*.png"))
    cache = tmp_path / "cache"
    decode_files(paths, (8, 8), cache=cache)
    target = paths[0]
    if change == "rewrite":  # same size on disk, other pixels
        write_image(target, class_image("b", (8, 8), seed=5))
        st = os.stat(target)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    elif change == "touch":
        st = os.stat(target)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    else:
        os.remove(target)
        paths = paths[1:]
    with caplog.at_level(logging.INFO, logger="kerasclf"):
        x, kept = decode_files(paths, (8, 8), cache=cache)
    assert "from the cache" not in caplog.text
    fresh, _ = decode_files(paths, (8, 8))  # no cache: the oracle
    assert np.array_equal(x, fresh)


def test_skipped_files_are_named_again_on_a_cache_hit(make_image_folder, tmp_path):
    from kerasclf.data.images import decode_files

    root = make_image_folder(tmp_path / "imgs", {"a": 3}, size=(8, 8))
    (root / "a" / "broken.png").write_bytes(b"not an image")
    paths = sorted(str(p) for p in root.rglob("*.png"))
    for _ in range(2):
        with pytest.warns(UserWarning, match="broken.png"):
            _, kept = decode_files(paths, (8, 8), cache=tmp_path / "cache")
        assert len(kept) == 3


@pytest.mark.slow
def test_concurrent_writers_leave_one_readable_entry(make_image_folder, tmp_path):
    """Two processes decode and store the same entry at once: write-then-rename, never a torn file."""
    root = make_image_folder(tmp_path / "imgs", {"a": 30, "b": 30}, size=(24, 24))
    cache = tmp_path / "cache"
    code = (
        "import sys, numpy as np\nfrom pathlib import Path\nfrom kerasclf.data.images import decode_files\n"
        f"paths = sorted(str(p) for p in Path({str(root)!r}).rglob('*.png'))\n"
        f"for _ in range(3):\n    x, kept = decode_files(paths, (16, 16), cache=Path({str(cache)!r}))\n"
        "print(int(x.sum()), len(kept))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert len({o[0].split()[-2] for o in outs}) == 1  # both saw the same images
    assert len(entries(cache)) == 1 and not list((cache / "decoded").glob(".*.tmp"))
    from kerasclf.data.decoded import fingerprint, load

    paths = sorted(str(p) for p in root.rglob("*.png"))
    assert load(entries(cache)[0], fingerprint(paths))[0].shape == (60, 16, 16, 3)

"""Atomic writes (kerasclf/runs/atomic.py): the previous file survives a failed or interrupted write."""

import errno
import os
import stat

import pytest

from kerasclf.errors import StorageError
from kerasclf.runs import atomic


def test_failed_write_leaves_the_previous_file_and_no_temporary_file(tmp_path):
    target = atomic.write_text(tmp_path / "metrics.json", '{"old": 1}\n')
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target, "w") as f:
            f.write('{"new": ')  # half a file ...
            raise RuntimeError("killed in mid-write")  # ... then the writer dies
    assert target.read_text() == '{"old": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_disk_full_is_a_storage_error_naming_the_file_and_the_old_file_stays(tmp_path, monkeypatch):
    target = atomic.write_text(tmp_path / "history.csv", "epoch,loss\n0,1.0\n")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StorageError) as info:
        atomic.write_text(target, "epoch,loss\n0,1.0\n1,0.5\n")
    message = str(info.value)
    assert str(target) in message and "No space left" in message and "intact" in message
    assert target.read_text() == "epoch,loss\n0,1.0\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_a_wrapped_disk_full_error_is_recognised(tmp_path):
    """Keras and h5py re-raise OSErrors inside their own exceptions."""
    target = tmp_path / "best.keras"
    with pytest.raises(StorageError):
        with atomic.atomic_path(target):
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as exc:
                raise ValueError("could not save the model") from exc
    assert not target.exists() and not list(tmp_path.iterdir())


def test_temporary_path_keeps_every_suffix_and_sits_beside_the_target(tmp_path):
    with atomic.atomic_path(tmp_path / "sub" / "model.weights.h5") as tmp:
        assert tmp.parent == tmp_path / "sub"
        assert tmp.name.endswith(".weights.h5") and tmp.name.startswith(atomic.TMP_PREFIX)
        tmp.write_bytes(b"x")
    assert (tmp_path / "sub" / "model.weights.h5").read_bytes() == b"x"


def test_written_files_get_umask_permissions_not_mkstemp_ones(tmp_path):
    path = atomic.write_text(tmp_path / "config.yaml", "seed: 0\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_remove_stale_temps_deletes_only_temporary_files(tmp_path):
    (tmp_path / "eval").mkdir()
    keep = atomic.write_text(tmp_path / "report.md", "# report\n")
    stale = [tmp_path / f"{atomic.TMP_PREFIX}best-abc.keras", tmp_path / "eval" / f"{atomic.TMP_PREFIX}roc-x.png"]
    for p in stale:
        p.write_bytes(b"half")
    assert sorted(atomic.remove_stale_temps(tmp_path)) == sorted(stale)
    assert keep.is_file() and not any(p.exists() for p in stale)

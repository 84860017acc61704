"""The training order depends on (seed, epoch) only; run directories are never shared."""

import threading

import numpy as np
import pytest

from kerasclf.data.order import EpochOrder, buffered_order


def test_epoch_order_is_a_function_of_seed_and_epoch_only():
    a, b = EpochOrder(100, seed=7), EpochOrder(100, seed=7)
    for epoch in (5, 0, 3):  # b visits epochs in another order, as a resumed run does
        b.epoch = epoch
        b.permutation()
    a.epoch = b.epoch = 3
    assert np.array_equal(a.permutation(), b.permutation())
    assert sorted(a.permutation()) == list(range(100))
    assert not np.array_equal(a.permutation(), a.permutation(epoch=4))  # reshuffled every epoch
    assert not np.array_equal(a.permutation(), EpochOrder(100, seed=8).permutation(epoch=3))


def test_batches_cover_the_epoch_once():
    order = EpochOrder(10, seed=0)
    order.epoch = 2
    rows = np.concatenate([order.batch(i, 4) for i in range(3)])
    assert np.array_equal(rows, order.permutation()) and len(order.batch(2, 4)) == 2


@pytest.mark.parametrize("buffer", [1, 3, 16])
def test_buffered_order_moves_no_element_earlier_than_its_buffer_allows(buffer):
    """A buffer of b elements emits element i at position >= i - (b - 1); b=1 keeps the order."""
    out = buffered_order(50, buffer, np.random.default_rng(0))
    assert sorted(out) == list(range(50))
    position = np.argsort(out)
    assert all(position[i] >= i - (buffer - 1) for i in range(50))
    if buffer == 1:
        assert list(out) == list(range(50))
    else:
        assert list(out) != list(range(50))


def test_same_run_name_started_at_once_gets_distinct_directories(tmp_path):
    from kerasclf.runs.rundir import make_run_dir

    barrier, made, errors = threading.Barrier(8), [], []

    def start():
        barrier.wait()
        try:
            made.append(make_run_dir(tmp_path / "logs", None, "digits", "cnn", run_name="same"))
        except Exception as exc:  # noqa: BLE001 -- any error fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(p.name for p in made) == sorted(["same"] + [f"same-{n}" for n in range(2, 9)])


def test_a_locked_run_directory_is_refused_to_a_second_process(tmp_path):
    import subprocess
    import sys

    from kerasclf.errors import ConfigError
    from kerasclf.runs.rundir import lock_run_dir

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from kerasclf.runs.rundir import lock_run_dir; "
         f"lock = lock_run_dir({str(run)!r}); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"in use by another kerasclf process \\(pid {holder.pid}\\)"):
            lock_run_dir(run)
    finally:
        holder.kill()
        holder.wait()
    assert lock_run_dir(run) is not None  # the OS released the lock with the killed process

"""Issue 17, part 7: a config error comes before TensorFlow is imported (about a second, not
15-60 s), and the registries answer config validation from source without importing Keras."""

import inspect
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT


def _train_in_a_fresh_process(*args):
    code = (
        "import sys\nfrom kerasclf.cli import main\n"
        f"try:\n    main(['train', *{list(args)!r}])\nexcept SystemExit as exc:\n    print('EXIT', exc.code)\n"
        "print('HEAVY', sorted(m for m in ('tensorflow', 'keras', 'jax', 'sklearn') if m in sys.modules))"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    return done, time.perf_counter() - started


@pytest.mark.parametrize("bad", [
    ["--set", "optim.lr=-1"],  # a range
    ["--set", "model.name=resnet81"],  # a registered name
    ["--set", "model.widths=[1,2]", "--set", "model.name=cnn"],  # a builder's keyword (from its signature)
    ["--set", "loss.name=focal", "--set", "loss.label_smoothing=0.1", "--set", "model.name=cnn"],  # a loss's meta
])
def test_a_config_error_is_reported_before_tensorflow_is_imported(bad):
    done, _ = _train_in_a_fresh_process("--config", "configs/cifar10/fast.yaml", *bad, "--dry-run")
    lines = done.stdout.strip().splitlines()
    assert lines[-2:-1] == ["EXIT 2"], (done.stdout, done.stderr)
    assert lines[-1] == "HEAVY []", done.stderr
    assert done.stderr.startswith("Error: ")


def test_resume_with_a_refused_override_is_reported_before_tensorflow(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data: {source: synthetic}\n")
    done, _ = _train_in_a_fresh_process("--resume", str(run), "--set", "optim.lr=-3")
    assert done.stdout.strip().splitlines()[-2:] == ["EXIT 2", "HEAVY []"], done.stderr
    assert "optim.lr" in done.stderr


@pytest.mark.parametrize("name", ["MODELS", "LOSSES", "OPTIMIZERS", "SCHEDULES"])
def test_registry_read_from_source_matches_the_imported_one(name):
    """What validation reads from source (names, meta, builder parameters) is what importing gives."""
    import kerasclf.registry as registries
    from kerasclf.registry import Registry

    real = getattr(registries, name)
    fresh = Registry(real.kind, real.error, builtin_modules=real.builtin_modules, decorators=real.decorators)
    static = {n: (fresh.lookup(n)[0].meta, fresh.lookup(n)[0].description, fresh.lookup(n)[1]) for n in fresh.static_names()}
    assert not fresh._loaded  # nothing was imported to answer
    imported = {e.name: (e.meta, e.description, list(inspect.signature(e.factory).parameters))
                for e in real.load().entries() if e.factory.__module__ in real.builtin_modules}  # not tests' plugins
    assert static == imported and len(static) >= 2

"""Issue 17, part 3: `train --dry-run` refuses whatever the real run refuses.

Checks that need only the config sit in the validation pass (kerasclf.config.validate); those
that need the built data run inside assemble.prepare, which `--dry-run` runs too. The walk
below finds every `raise ConfigError` outside kerasclf/config.py: each must be listed here
with the reason it cannot be checked in the validation pass, so a new one cannot slip in.
"""

import ast

import pytest
from conftest import REPO_ROOT, assert_user_error

PACKAGE = REPO_ROOT / "kerasclf"
IN_PREPARE = "needs the built data or model; raised inside assemble.prepare, which --dry-run runs"
NOT_CONFIG = "about the command line or a run directory, not a config value; raised before any data is read"
FEATURES = "predict / features / svm / zeroshot: command options, files and models named on the command line, not a config"
DEVICES = ("needs the device count of the started engine when it counts accelerators (TensorFlow / JAX must start "
           "for that, which --dry-run does not do: a gap only on accelerator machines); a count the config gives "
           "(train.distribute=none, train.cpu_devices) is checked by")
DEFENCE = "repeats a config-pass check for callers that build sections without load_config"

# "module:function" -> why this raise cannot sit in the validation pass.
ALLOWED = {
    "kerasclf/cli.py:_sweep": NOT_CONFIG + " (--slurm options without --launcher slurm)",
    "kerasclf/features/extract.py:_from_registry": FEATURES,
    "kerasclf/features/extract.py:extract_features": FEATURES,
    "kerasclf/features/extract.py:extractor_and_data": FEATURES,
    "kerasclf/features/imagenet.py:imagenet_names": FEATURES + " (KerasHub's ImageNet names must be installed)",
    "kerasclf/features/imagenet.py:load_mapping": FEATURES + " (a mapping file given on the command line)",
    "kerasclf/features/predict.py:predict_files": FEATURES,
    "kerasclf/features/zeroshot.py:default_mapping": FEATURES,
    "kerasclf/features/zeroshot.py:imagenet_classifier": FEATURES,
    "kerasclf/models/__init__.py:last_feature_map": "a segmentation encoder must end in a feature map, known only "
                                                    "from the built builder's output; " + IN_PREPARE,
    "kerasclf/studies/slurm.py:parse_slurm_options": NOT_CONFIG + " (sbatch options)",
    "kerasclf/studies/slurm.py:run_task": NOT_CONFIG + " (an array task's index and the study's tasks.json)",
    "kerasclf/studies/slurm.py:submit": "sbatch's own refusal, known only when the script is submitted",
    "kerasclf/training/distribute.py:Distribution.local_config": DEFENCE + " (TensorFlow installed for a "
                                                                 "multi-process run's input)",
    "kerasclf/training/distribute.py:_multi_worker": "TF_CONFIG from the environment of each worker; the engine is "
                                                     "refused by the config pass for now (Keras bug)",
    "kerasclf/training/distribute.py:check_global_batch": DEVICES + " the validation pass (_global_batch_divides)",
    "kerasclf/training/distribute.py:check_split_sizes": "needs the built splits, and " + DEVICES
                                                         + " assemble.prepare, which --dry-run runs",
    "kerasclf/training/distribute.py:split_cpu": "TensorFlow's devices may already run in this process (an "
                                                 "in-process caller); a fresh `kerasclf train` never hits it",
    "kerasclf/training/lr_find.py:lr_find": "lr-find's own options (steps, rates) against the data it loaded",
    "kerasclf/cli.py:_train": NOT_CONFIG + " (--resume with --config)",
    "kerasclf/data/files.py:choose_stream": "needs to know whether TensorFlow is installed and, for auto, "
                                            "the folder's image count; " + IN_PREPARE,
    "kerasclf/data/sampler.py:PKSampler.__init__": "needs the training split's class count; "
                                                   "training.feeding.preflight builds the sampler in prepare",
    "kerasclf/data/splits.py:select_classes": "data.classes against the data set's class names; " + IN_PREPARE,
    "kerasclf/layers/augment.py:build_augmentation": "crop_padding against the data's image size when "
                                                     "data.image_size is unset; " + IN_PREPARE,
    "kerasclf/layers/augment.py:build_augmentation.check": DEFENCE,
    "kerasclf/models/__init__.py:_call_builder": "the builder's own checks of its keyword values run when it "
                                                 "is called; " + IN_PREPARE,
    "kerasclf/models/batchnorm.py:check_batch_of_one": "which BatchNorm layers follow a dense layer and stay "
                                                        "trainable is known from the built model; " + IN_PREPARE,
    "kerasclf/models/freeze.py:_Graph.find": "model.trainable from:<layer> against the built model's layers; "
                                             + IN_PREPARE,
    "kerasclf/models/freeze.py:apply_trainable": "model.trainable against the built model's layers; " + IN_PREPARE,
    "kerasclf/runs/keeper.py:open_resume": NOT_CONFIG + " (what --resume may change)",
    "kerasclf/runs/rundir.py:lock_run_dir": NOT_CONFIG + " (another process holds the run)",
    "kerasclf/runs/writable.py:check_writable": "train.log_dir must be writable now, which only the file "
                                                "system can say; first thing in prepare",
    "kerasclf/studies/runs.py:find_runs": NOT_CONFIG + " (compare's folder arguments)",
    "kerasclf/studies/sweep.py:_check_finished_match_plan": NOT_CONFIG + " (a study folder's finished runs)",
    "kerasclf/studies/sweep.py:_validated": "the validation pass itself, per sweep point",
    "kerasclf/studies/sweep.py:load_study_file": NOT_CONFIG + " (the study file's own shape)",
    "kerasclf/studies/sweep.py:parse_grid": NOT_CONFIG + " (--grid syntax)",
    "kerasclf/studies/sweep.py:plan_sweep": NOT_CONFIG + " (how grid, runs and --set combine)",
    "kerasclf/studies/sweep.py:run_sweep": NOT_CONFIG + " (--parallel)",
    "kerasclf/training/feeding.py:preflight": "needs the built data (streamed or not) or the Keras backend; "
                                              "called by assemble.prepare",
    "kerasclf/training/gradient_flow.py:check_backend": "the Keras backend; training.feeding.preflight calls it",
}


def config_error_raises(package=PACKAGE):
    """{"path:function"} of every `raise ConfigError` in the package outside kerasclf/config.py."""
    found = set()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        if rel == "kerasclf/config.py" or rel.startswith("kerasclf/config/"):
            continue

        def visit(node, where, rel=rel):
            for child in ast.iter_child_nodes(node):
                inner = where
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    inner = f"{where}.{child.name}" if where else child.name
                if isinstance(child, ast.Raise) and child.exc is not None:
                    exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                    if getattr(exc, "id", getattr(exc, "attr", None)) == "ConfigError":
                        found.add(f"{rel}:{where}")
                visit(child, inner, rel)

        visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def test_every_config_error_outside_the_validation_pass_is_listed_with_its_reason():
    found = config_error_raises()
    assert found - set(ALLOWED) == set(), "new raises of ConfigError outside kerasclf/config: move the check " \
        "into the validation pass, or list it here with the reason it needs more than the config"
    assert set(ALLOWED) - found == set(), "entries with no raise left: remove them"
    assert all(len(reason) > 20 for reason in ALLOWED.values())


def test_the_walk_finds_a_raise_nested_in_a_method(tmp_path):
    (tmp_path / "kerasclf").mkdir()
    (tmp_path / "kerasclf" / "probe.py").write_text(
        "class A:\n    def f(self):\n        if x:\n            raise errors.ConfigError('no')\n"
        "def g():\n    raise DataError('other class')\n"
    )
    (tmp_path / "kerasclf" / "config.py").write_text("def h():\n    raise ConfigError('the pass')\n")
    assert config_error_raises(tmp_path / "kerasclf") == {"kerasclf/probe.py:A.f"}


@pytest.mark.parametrize("sets,fragments", [
    (["data.batch_size=32", "data.sampler.classes_per_batch=4", "data.sampler.images_per_class=4"],
     ["P * K = 4 * 4 = 16", "data.batch_size=16"]),
    (["data.sampler.classes_per_batch=4"], ["needs both"]),
    (["data.stream=true", "train.data_on_device=true"], ["data_on_device", "data.stream"]),
    (["data.image_size=[8,8]", "augment.crop_padding=8"], ["crop_padding=8", "below 8"]),
])
def test_dry_run_refuses_what_training_refuses_after_data_loading(cli, sets, fragments):
    args = [a for s in ["data.source=synthetic", *sets] for a in ("--set", s)]
    assert_user_error(cli("train", "--dry-run", *args), *fragments)


def test_dry_run_refuses_more_classes_per_batch_than_the_data_has(cli, make_image_folder, tmp_path):
    root = make_image_folder(tmp_path / "imgs", {"a": 6, "b": 6})
    args = [a for s in [f"data.source=folder:{root}", "data.batch_size=6", "data.sampler.classes_per_batch=3",
                        "data.sampler.images_per_class=2", "model.name=cnn"] for a in ("--set", s)]
    assert_user_error(cli("train", "--dry-run", *args), "classes_per_batch=3", "only 2 classes")


def test_dry_run_refuses_what_the_devices_cannot_share(cli, monkeypatch):
    """train.cpu_devices puts the device count in the config: a global batch that does not split
    over it is refused by the validation pass; data-parallel's split sizes (synthetic: 360 / 40 /
    100 images) after data loading, before any engine starts."""
    def dry_run(*sets):
        return cli("train", "--dry-run", *[a for s in ["data.source=synthetic", *sets] for a in ("--set", s)])

    monkeypatch.setattr("kerasclf.config.checks.keras_backend", lambda: "tensorflow")  # mirrored's backend
    assert_user_error(dry_run("train.distribute=mirrored", "train.cpu_devices=3", "data.batch_size=64"),
                      "data.batch_size=64", "3 devices", "e.g. 63")
    monkeypatch.setattr("kerasclf.config.checks.keras_backend", lambda: "jax")  # data-parallel's
    assert_user_error(dry_run("train.distribute=data-parallel", "train.cpu_devices=3", "data.batch_size=30"),
                      "the val split has 40 images", "multiple of 3")

"""The `kerasclf` command. Heavy modules (Keras, TensorFlow, JAX) are imported inside commands."""

import json
import os
import re
import sys
from pathlib import Path

import click

from kerasclf import __version__
from kerasclf.errors import ConfigError, KerasclfError, RunStopped


def _quiet_tensorflow():
    # TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) buries the real output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Exit codes (docs/resume.md, "Exit codes"): 0 done, 1 a bug (traceback), 2 bad input or environment
# (config, data, checkpoint, full disk), 3 non-finite loss, 130 Ctrl-C, 143 SIGTERM.
def _run(fn, *args, **kwargs):
    """Call fn; a KerasclfError becomes a one-paragraph message and exit code 2; a run that
    stopped early (training/stops.py) prints why and exits with its own code."""
    try:
        return fn(*args, **kwargs)
    except KerasclfError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except RunStopped as exc:
        click.echo(f"Stopped: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # before training started: nothing to save
        click.echo("Interrupted.", err=True)
        sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kerasclf")
def main():
    """One-command image-classification and transfer-learning experiments (Keras 3)."""
    from kerasclf.console import quiet_tensorflow_retracing, show_notes, show_warnings_plainly

    _quiet_tensorflow()
    quiet_tensorflow_retracing()
    show_warnings_plainly()
    show_notes()


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Experiment YAML (configs/<dataset>/<name>.yaml).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. train.epochs=5 (repeatable).")
@click.option("--data-dir", default=None, help="Download cache for data sets (default $KERASCLF_DATA or ~/.cache/kerasclf).")
@click.option("--dry-run", is_flag=True, help="Build data and model, print a JSON summary, train nothing.")
@click.option("--resume", "resume_dir", default=None, type=click.Path(file_okay=False),
              help="Continue the run in this directory (logs/<run>) from its last finished epoch, with its config.yaml.")
def train(config_path, overrides, data_dir, dry_run, resume_dir):
    """Train a model; the run lands in <train.log_dir>/<dataset>-<model>-<time>/."""
    _run(_train, config_path, overrides, data_dir, dry_run, resume_dir)


def _train(config_path, overrides, data_dir, dry_run, resume_dir=None):
    from pathlib import Path

    from kerasclf.config import load_config
    from kerasclf.console import Stage, import_tensorflow_quietly, startup_stage_name
    from kerasclf.errors import ConfigError

    resume = None
    if resume_dir and config_path:
        raise ConfigError(
            "--resume takes the config from the run directory's config.yaml; drop --config "
            "(to train a changed config, start a new run with --config)."
        )
    # The config is checked before TensorFlow is imported (15-60 s): a config error comes in about a second.
    if not resume_dir:
        cfg = load_config(config_path, overrides)
    elif (Path(resume_dir) / "config.yaml").is_file():
        load_config(Path(resume_dir) / "config.yaml", overrides)  # open_resume checks it again, with the run
    with Stage(startup_stage_name()):
        import_tensorflow_quietly()  # before anything imports Keras: TensorFlow's start-up lines once, filtered
    if resume_dir:
        from kerasclf.runs.keeper import open_resume

        resume = open_resume(resume_dir, overrides, data_dir)
        cfg = resume.cfg
    if data_dir:
        cfg.data.data_dir = data_dir
    from kerasclf.training.assemble import prepare
    from kerasclf.training.run import train as run_training

    if dry_run:
        click.echo(json.dumps(prepare(cfg).summary, indent=2))
        return
    run_dir, metrics = run_training(cfg, resume=resume)  # also writes eval/<split>/ when train.evaluate_after
    shown = ("best_val_accuracy", "best_epoch", "test_accuracy", "wall_seconds")
    headline = [k for k in metrics if k.startswith(("test_", "val_")) and k not in shown]  # mAP, mean IoU: other tasks
    click.echo(json.dumps({k: metrics[k] for k in (*shown, *headline)}))
    if metrics.get("run_directory"):  # another process of a multi-process run (train.hosts)
        click.echo(f"Run directory: {metrics['run_directory']}")
        return
    click.echo(f"Run directory: {run_dir}")
    if metrics.get("report_path"):
        click.echo(f"Report: {metrics['report_path']}")


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="A .keras file written by `kerasclf train`.")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default=None,
              help="Images to score; all: every image. Default: all with --data, else test.")
@click.option("--data", "data_spec", default=None, help="Data to evaluate on (a registered name or folder:/path); default: the training data.")
@click.option("--data-dir", default=None, help="Download cache for data sets.")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Report folder (default: <run>/eval/<split>, or <run>/eval/<data>-<split> with --data).")
@click.option("--embeddings", is_flag=True, help="Also the embedding report: precision@1, R-precision, MAP@R, kNN, NMI, t-SNE, projector files.")
@click.option("--tsne-points", default=2000, show_default=True, type=click.IntRange(min=10),
              help="Points in the t-SNE figures and the projector (seeded subsample).")
def evaluate(checkpoint, split, data_spec, data_dir, batch_size, out_dir, embeddings, tsne_points):
    """Write reports (sklearn report, confusion matrices, galleries, curves) for a checkpoint."""
    from kerasclf.console import import_tensorflow_quietly
    from kerasclf.evaluation.evaluate import evaluate_checkpoint

    import_tensorflow_quietly()

    result = _run(
        evaluate_checkpoint, checkpoint, split=split, data=data_spec, data_dir=data_dir,
        batch_size=batch_size, out_dir=out_dir, embeddings=embeddings, tsne_points=tsne_points,
    )
    if result.get("task") == "segmentation":
        click.echo(f"{result['split']} mean IoU: {result['mean_iou']:.4f}, pixel accuracy {result['pixel_accuracy']:.4f} "
                   f"on {result['size']} images")
    elif result.get("task") == "multilabel":
        shown = "n/a" if result["mAP"] is None else f"{result['mAP']:.4f}"
        click.echo(f"{result['split']} mAP: {shown}, macro F1 {result['f1_macro']:.4f} at threshold "
                   f"{result['threshold']:g} on {result['size']} images")
    else:
        click.echo(f"{result['split']} accuracy: {result['accuracy']:.4f} on {result['size']} images")
    if embeddings:
        e = result["embeddings"]
        click.echo(f"embeddings: precision@1 {e['precision_at_1']:.4f}, MAP@R {e['map_at_r']:.4f}, "
                   f"intra/inter {e['intra_inter_ratio']:.4f}")
    click.echo(f"Report: {result['report_path']}")
    if result.get("html_path"):  # multi-label and segmentation reports have no HTML page yet
        click.echo(f"HTML report: {result['html_path']}")


def _lister(command, registry_name, help_text, footer=None, order=None):
    """A command that prints one line per entry of a registry (kerasclf.registry)."""

    def list_entries():
        import kerasclf.registry as registries

        entries = getattr(registries, registry_name).entries()
        if order:
            entries = sorted(entries, key=order)
        width = max([len(e.name) for e in entries] + [12]) + 2
        for entry in entries:
            click.echo(f"{entry.name:<{width}}{entry.description}")
        if footer:
            click.echo(footer(width))

    main.command(command, help=help_text)(list_entries)


_lister("datasets", "DATASETS", "List the registered data sets.", footer=lambda w: (
    f"{'folder:<path>':<{w}}your own images: <path>/<class>/*.jpg|png|bmp|gif (or <path>/train|val|test/<class>/)"))
@main.command("lr-find")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Experiment YAML (configs/<dataset>/<name>.yaml).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--data-dir", default=None, help="Download cache for data sets.")
@click.option("--start", default=1e-7, show_default=True, type=float, help="Learning rate of the first batch.")
@click.option("--end", default=10.0, show_default=True, type=float, help="Learning rate of the last batch.")
@click.option("--steps", default=100, show_default=True, type=click.IntRange(min=10), help="Batches from --start to --end.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Default: <train.log_dir>/lr-find-<name>/.")
def lr_find(config_path, overrides, data_dir, start, end, steps, out_dir):
    """Learning-rate range test: loss against an exponentially growing rate, plot + suggested optim.lr."""
    _run(_lr_find, config_path, overrides, data_dir, start, end, steps, out_dir)


def _lr_find(config_path, overrides, data_dir, start, end, steps, out_dir):
    from kerasclf.config import load_config
    from kerasclf.console import import_tensorflow_quietly

    import_tensorflow_quietly()
    cfg = load_config(config_path, list(overrides))
    if data_dir:
        cfg.data.data_dir = data_dir
    from kerasclf.training.lr_find import lr_find as run_range_test

    result = run_range_test(cfg, start=start, end=end, steps=steps, out_dir=out_dir)
    s = result["suggestion"]
    if s["steepest"] is None:
        click.echo("Too few batches to suggest a rate: raise --steps or use more data.")
    else:
        click.echo(f"Suggested optim.lr: {s['steepest']:.2g} (steepest descent); minimum / 10: {s['min_over_10']:.2g}; "
                   f"loss lowest at {s['minimum']:.2g}")
    click.echo(f"Plot: {Path(result['out_dir']) / 'lr_find.png'}")


@main.command()
def models():
    """List the registered models."""
    from kerasclf.catalogue import catalogue  # read from source: no Keras/TensorFlow import

    for entry in catalogue():
        click.echo(f"{entry.name:<14} {entry.description}")


def _aux_losses(width):
    import kerasclf.registry as registries

    lines = ["", "Auxiliary losses (loss.aux, on the embedding):"]
    lines += [f"{e.name:<{width}}{e.description}" for e in registries.AUX_LOSSES.entries()]
    return "\n".join(lines)


_lister("losses", "LOSSES", "List the registered losses (loss.name) and auxiliary losses (loss.aux).",
        footer=_aux_losses)
_lister("optimizers", "OPTIMIZERS", "List the registered optimizers (optim.name).")
_lister("schedules", "SCHEDULES", "List the registered learning-rate schedules (optim.schedule).")
_lister("report-sections", "REPORT_SECTIONS", "List the sections of an evaluation report, in order.",
        order=lambda e: (e.meta.get("order", 100), e.name))


@main.command("config-reference")
def config_reference():
    """Print the config reference (docs/config.md) generated from the schema's help texts."""
    from kerasclf.config.reference import config_reference as reference

    click.echo(reference(), nl=False)


@main.command("data-report")
@click.option("--data", "data_spec", required=True, help="A registered data set (svhn, cifar10, ...) or folder:/path.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Report folder (default: logs/data-report-<name>).")
@click.option("--data-dir", default=None, help="Download cache for data sets.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Data config key, e.g. data.val_fraction=0.2 or data.image_size=[64,64] (repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed of the carved splits and of the samples shown.")
@click.option("--samples-per-class", default=8, show_default=True, type=click.IntRange(1, 32))
def data_report(data_spec, out_dir, data_dir, overrides, seed, samples_per_class):
    """Class counts per split, samples per class, channel statistics, image sizes, duplicates."""
    _run(_data_report, data_spec, out_dir, data_dir, overrides, seed, samples_per_class)


def _data_report(data_spec, out_dir, data_dir, overrides, seed, samples_per_class):
    from kerasclf.config import load_config
    from kerasclf.console import import_tensorflow_quietly

    import_tensorflow_quietly()  # before the report's modules import Keras: start-up lines once, filtered
    from kerasclf.evaluation.data_report import build_report_dataset, default_out_dir, write_data_report

    cfg = load_config(None, [f"data.source={data_spec}", f"seed={seed}", *overrides])
    if data_dir:
        cfg.data.data_dir = data_dir
    dataset = build_report_dataset(cfg.data, cfg.seed)
    result = write_data_report(dataset, out_dir or default_out_dir(data_spec), samples_per_class, cfg.seed)
    numbers = result["numbers"]
    click.echo(", ".join(f"{split}: {n:,} images" for split, n in numbers["sizes"].items())
               + f"; {len(numbers['class_names'])} classes")
    for pair, found in numbers["duplicates"]["between"].items():
        click.echo(f"exact duplicates {pair}: {found['count']}")
    click.echo(f"Report: {result['report_path']}")


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Base experiment YAML.")
@click.option("--study", "study_path", type=click.Path(dir_okay=False), help="Study file (configs/studies/*.yaml): base config, grid or named runs.")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2", help="A key and its values; repeat for a grid (all combinations).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key in every run (repeatable).")
@click.option("--name", default=None, help="Study name: runs go to <train.log_dir>/<name>/<run>/ (default from the config and grid keys).")
@click.option("--parallel", default=1, show_default=True, type=int, help="Runs at the same time (each its own process).")
@click.option("--data-dir", default=None, help="Download cache for data sets.")
@click.option("--dry-run", is_flag=True, help="List the runs, their overrides and which are finished; run nothing.")
@click.option("--seeds", default=None, metavar="S1,S2", help="Repeat every point with each seed (a grid on `seed`); compare shows mean ± std.")
@click.option("--launcher", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
              help="local: run here; slurm: write a Slurm job array (one run per task) and submit it with sbatch.")
@click.option("--slurm", "slurm_options", multiple=True, metavar="KEY=VALUE",
              help="An sbatch option for every task, e.g. --slurm partition=gpu --slurm gres=gpu:1 (repeatable).")
def sweep(config_path, study_path, grid, overrides, name, parallel, data_dir, dry_run, seeds, launcher, slurm_options):
    """Run every point of a grid into logs/<study>/<run>/, then compare them.

    Re-running the same command skips finished runs and re-does the others.
    """
    _run(_sweep, config_path, study_path, grid, overrides, name, parallel, data_dir, dry_run, seeds, launcher,
         slurm_options)


def _sweep(config_path, study_path, grid, overrides, name, parallel, data_dir, dry_run, seeds=None, launcher="local",
           slurm_options=()):
    from kerasclf.studies.sweep import plan_sweep, run_sweep, states

    if slurm_options and launcher != "slurm":
        raise ConfigError("--slurm options are for --launcher slurm; add --launcher slurm or drop them.")
    if seeds:
        grid = [*grid, f"seed={seeds}"]  # a grid key given twice is refused with a clear message
    plan = plan_sweep(config_path, grid, overrides, name=name, study=study_path, data_dir=data_dir)
    if launcher == "slurm" and not dry_run:
        return _submit_slurm(plan, slurm_options)
    if dry_run:
        current = states(plan)
        click.echo(f"Study {plan.study_dir}: {len(plan.points)} runs")
        for point in plan.points:
            click.echo(f"  {point.name:<40} {current[point.name]:<10} {' '.join(point.texts)}")
        return
    try:
        final = run_sweep(plan, parallel=parallel, echo=click.echo, argv=["kerasclf", *sys.argv[1:]])
    except KeyboardInterrupt:
        sys.exit(130)
    failed = [n for n, s in final.items() if s != "finished"]
    if failed:
        click.echo(f"{len(failed)} of {len(final)} runs did not finish: {', '.join(failed)}", err=True)
        sys.exit(1)


def _submit_slurm(plan, slurm_options):
    from kerasclf.studies.slurm import how_to_submit, parse_slurm_options, submit, write_slurm_array

    script, todo = write_slurm_array(plan, parse_slurm_options(slurm_options), argv=["kerasclf", *sys.argv[1:]])
    if not todo:
        click.echo(f"Study {plan.study_dir}: every run is finished; nothing to submit. Compare: kerasclf compare {plan.study_dir}")
        return
    click.echo(f"Study {plan.study_dir}: {len(todo)} of {len(plan.points)} runs as a Slurm array: {script}")
    answer = submit(script)
    if answer is None:
        click.echo(f"sbatch is not installed here; on the cluster's login node run: {how_to_submit(script)}")
    else:
        click.echo(answer)
    click.echo(f"When the array has finished: kerasclf compare {plan.study_dir} (submitting again runs only missing runs)")


@main.command("sweep-task")
@click.argument("study_dir", type=click.Path(file_okay=False))
@click.argument("index", type=int)
def sweep_task(study_dir, index):
    """One task of a Slurm array written by `sweep --launcher slurm` (run by the array script)."""
    from kerasclf.studies.slurm import run_task

    state = _run(run_task, study_dir, index)
    if state != "finished":
        sys.exit(1)


@main.command()
@click.argument("dirs", nargs=-1, required=True)
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where to write comparison.md/.csv and the curves (default: the runs' common parent).")
@click.option("--no-hparams", is_flag=True, help="Skip the TensorBoard HParams summary.")
def compare(dirs, out_dir, no_hparams):
    """Table (markdown + CSV) and overlaid curves over run directories, study directories or globs."""
    import warnings

    from kerasclf.studies.compare import SKIPPED_TEXT
    from kerasclf.studies.compare import compare as write

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(SKIPPED_TEXT))  # said below, without a source line
        paths = _run(write, dirs, out_dir, hparams=not no_hparams)
    if paths["skipped"]:
        click.echo(f"Warning: {SKIPPED_TEXT}: {', '.join(paths['skipped'])}", err=True)
    click.echo(f"Table: {paths['markdown']} (CSV: {paths['csv']})")
    for png in paths["figures"]:
        click.echo(f"Curves: {png}")
    if paths.get("hparams"):
        click.echo(f"TensorBoard HParams: tensorboard --logdir {paths['hparams']}")


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="A .keras file written by `kerasclf train`.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1), help="Classes per image.")
@click.option("--out", "out_csv", default="predictions.csv", show_default=True, type=click.Path(dir_okay=False),
              help="CSV: path, then class and probability for each of the top k; unreadable files with their reason.")
@click.option("--grid", "grid_png", default=None, type=click.Path(dir_okay=False),
              help="Also a PNG grid of the first 36 images with their top class.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--show", default=20, show_default=True, type=click.IntRange(min=0), help="Rows of the table printed (all are in the CSV).")
def predict(checkpoint, inputs, top_k, out_csv, grid_png, batch_size, show):
    """Classify image files and folders (searched recursively) with a checkpoint.

    Any size and mode (grayscale, RGBA, palette) is fitted to the checkpoint's input as in
    training; unreadable files are listed at the end, not fatal.
    """
    from kerasclf.console import import_tensorflow_quietly

    import_tensorflow_quietly()
    _run(_predict, checkpoint, inputs, top_k, out_csv, grid_png, batch_size, show)


def _predict(checkpoint, inputs, top_k, out_csv, grid_png, batch_size, show):
    from kerasclf.features.predict import predict_files, resize_policy, table_lines, write_csv, write_grid

    result = predict_files(checkpoint, inputs, batch_size)
    for line in table_lines(result, top_k, limit=show):
        click.echo(line)
    click.echo(f"{len(result.paths)} images classified; CSV: {write_csv(result, out_csv, top_k)}")
    if grid_png and result.paths:
        from kerasclf.checkpoint import load_checkpoint

        size = load_checkpoint(checkpoint)[1].image_size
        click.echo(f"Grid: {write_grid(result, grid_png, tuple(size), resize_policy(checkpoint))}")
    if result.unreadable:
        click.echo(f"{len(result.unreadable)} file(s) could not be read:", err=True)
        for text in result.unreadable:
            click.echo(f"  {text}", err=True)


@main.command()
@click.option("--backbone", default=None, help="A registered model (`kerasclf models`); omit to use a checkpoint (--weights X.keras) as it is.")
@click.option("--weights", default=None,
              help="imagenet | none | a local weights file | a kerasclf checkpoint .keras (default: imagenet for pretrained backbones).")
@click.option("--data", "data_spec", default=None,
              help="A registered data set or folder:/path (default with a checkpoint: the run's own data and splits).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The .npz to write.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config key, e.g. data.test_fraction=0.2 or data.image_size=[96,96] (repeatable).")
@click.option("--data-dir", default=None, help="Download cache for data sets.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1))
def features(backbone, weights, data_spec, out_path, overrides, data_dir, batch_size):
    """Penultimate embeddings of every split (train/val/test) into one .npz with labels and class names."""
    from kerasclf.console import import_tensorflow_quietly

    import_tensorflow_quietly()
    _run(_features, backbone, weights, data_spec, out_path, overrides, data_dir, batch_size)


def _features(backbone, weights, data_spec, out_path, overrides, data_dir, batch_size):
    from kerasclf.features.extract import extract_features

    meta = extract_features(out_path, backbone, weights, data_spec, overrides, data_dir, batch_size)
    counts = ", ".join(f"{k} {v:,}" for k, v in meta["counts"].items())
    click.echo(f"{meta['feature_size']} features per image ({counts}) from {meta['backbone']} in {meta['seconds']} s")
    click.echo(f"Features: {out_path}")


@main.command()
@click.option("--features", "features_path", required=True, type=click.Path(dir_okay=False), help="A .npz written by `kerasclf features`.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Report folder (default: <features>-svm/).")
@click.option("--kernel", "kernels", multiple=True, type=click.Choice(["linear", "rbf"]), help="Kernel(s) to fit (default: both).")
@click.option("--max-train", default=None, type=click.IntRange(min=10),
              help="Fit on a seeded, stratified subsample of this many training images (RBF SVMs grow quadratically).")
@click.option("--folds", default=3, show_default=True, type=click.IntRange(min=2),
              help="Cross-validation folds to choose C when the file has no validation split.")
@click.option("--seed", default=0, show_default=True)
def svm(features_path, out_dir, kernels, max_train, folds, seed):
    """One-vs-rest SVMs on features: C chosen on val (or by CV), the evaluate report set per kernel."""
    _run(_svm, features_path, out_dir, kernels, max_train, folds, seed)


def _svm(features_path, out_dir, kernels, max_train, folds, seed):
    from pathlib import Path

    from kerasclf.features.svm import KERNELS, run_svm

    out = out_dir or str(Path(features_path).with_suffix("")) + "-svm"
    run_svm(features_path, out, kernels or KERNELS, max_train, folds, seed, echo=click.echo)
    click.echo(f"Report: {Path(out) / 'svm.md'}")


@main.command()
@click.option("--model", "model_name", required=True,
              help="An ImageNet-1k classifier: efficientnet_lite0, mobilenet_v2 (weights offline from their packages), "
                   "resnet50, vgg16, efficientnet_b0 (keras.applications, downloaded).")
@click.option("--weights", default="imagenet", show_default=True,
              help="imagenet, or for keras.applications models none / a local weights file with the classifier.")
@click.option("--data", "data_spec", required=True, help="A registered data set or folder:/path whose class names are the mapping's.")
@click.option("--classes", default=None, help="The label mapping: cifar10, stl10 (shipped) or a YAML file (default: from --data).")
@click.option("--split", default="all", show_default=True, type=click.Choice(["all", "train", "test"]))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Report folder (default: logs/zeroshot-<model>-<mapping>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Data config key, e.g. data.limit_per_class=100 (repeatable).")
@click.option("--data-dir", default=None, help="Download cache for data sets.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
def zeroshot(model_name, weights, data_spec, classes, split, out_dir, overrides, data_dir, batch_size):
    """An ImageNet classifier on another label set: its 1000 classes mapped onto the target classes + "other"."""
    from kerasclf.console import import_tensorflow_quietly

    import_tensorflow_quietly()
    _run(_zeroshot, model_name, weights, data_spec, classes, split, out_dir, overrides, data_dir, batch_size)


def _zeroshot(model_name, weights, data_spec, classes, split, out_dir, overrides, data_dir, batch_size):
    from kerasclf.features.zeroshot import default_mapping, run_zeroshot

    out = out_dir or f"logs/zeroshot-{model_name}-{classes or default_mapping(data_spec)}"
    result = run_zeroshot(out, model_name, data_spec, classes, weights, overrides, data_dir, batch_size, split,
                          echo=click.echo)
    click.echo(f"Report: {result['report_path']}")


@main.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False), help="The HTML file (default: <run>/report.html).")
def report(run_dir, out_path):
    """One self-contained HTML page for a run: summary, config, curves, evaluations, figures, environment."""
    from kerasclf.evaluation.html_report import write_html_report

    click.echo(f"HTML report: {_run(write_html_report, run_dir, out_path)}")


if __name__ == "__main__":
    main()

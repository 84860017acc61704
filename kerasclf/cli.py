"""The `kerasclf` command. Heavy modules (Keras, TensorFlow, JAX) are imported inside commands."""

import json
import os
import sys

import click

from kerasclf import __version__
from kerasclf.errors import KerasclfError, RunStopped


def _quiet_tensorflow():
    # TensorFlow's C++ start-up chatter (CUDA probes, oneDNN notes) buries the real output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Exit codes (README "Exit codes"): 0 done, 1 a bug (traceback), 2 bad input or environment
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
    _quiet_tensorflow()


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
    from kerasclf.config import load_config
    from kerasclf.errors import ConfigError

    resume = None
    if resume_dir:
        if config_path:
            raise ConfigError(
                "--resume takes the config from the run directory's config.yaml; drop --config "
                "(to train a changed config, start a new run with --config)."
            )
        from kerasclf.training.keeper import open_resume

        resume = open_resume(resume_dir, overrides, data_dir)
        cfg = resume.cfg
    else:
        cfg = load_config(config_path, overrides)
    if data_dir:
        cfg.data.data_dir = data_dir
    from kerasclf.training.run import prepare, train as run_training

    if dry_run:
        click.echo(json.dumps(prepare(cfg).summary, indent=2))
        return
    run_dir, metrics = run_training(cfg, resume=resume)  # also writes eval/<split>/ when train.evaluate_after
    click.echo(json.dumps({k: metrics[k] for k in ("best_val_accuracy", "best_epoch", "test_accuracy", "wall_seconds")}))
    click.echo(f"Run directory: {run_dir}")
    if metrics.get("report_path"):
        click.echo(f"Report: {metrics['report_path']}")


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="A .keras file written by `kerasclf train`.")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--data", "data_spec", default=None, help="Data to evaluate on (a registered name or folder:/path); default: the training data.")
@click.option("--data-dir", default=None, help="Download cache for data sets.")
@click.option("--batch-size", default=256, show_default=True)
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Report folder (default: <run>/eval/<split>).")
def evaluate(checkpoint, split, data_spec, data_dir, batch_size, out_dir):
    """Write reports (sklearn report, confusion matrices, galleries, curves) for a checkpoint."""
    from kerasclf.evaluation.evaluate import evaluate_checkpoint

    result = _run(
        evaluate_checkpoint, checkpoint, split=split, data=data_spec, data_dir=data_dir,
        batch_size=batch_size, out_dir=out_dir,
    )
    click.echo(f"{split} accuracy: {result['accuracy']:.4f} on {result['size']} images")
    click.echo(f"Report: {result['report_path']}")


@main.command()
def datasets():
    """List the registered data sets."""
    from kerasclf.data import load_builtin_datasets

    for entry in load_builtin_datasets().entries():
        click.echo(f"{entry.name:<16} {entry.description}")
    click.echo(f"{'folder:<path>':<16} your own images: <path>/<class>/*.jpg|png|bmp|gif (or <path>/train|val|test/<class>/)")


@main.command()
def models():
    """List the registered models."""
    from kerasclf.models import load_builtin_models

    for entry in load_builtin_models().entries():
        click.echo(f"{entry.name:<12} {entry.description}")


if __name__ == "__main__":
    main()

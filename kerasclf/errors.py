"""User-facing errors: one paragraph that says what was wrong and what to do.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""

import difflib


class KerasclfError(Exception):
    """An error caused by the user's input (config, data, checkpoint, network)."""


class ConfigError(KerasclfError):
    pass


class DataError(KerasclfError):
    pass


class ModelError(KerasclfError):
    pass


class CheckpointError(KerasclfError):
    pass


def closest(name, candidates):
    """The candidate closest to `name`, or None when nothing is similar."""
    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.5)
    return match[0] if match else None


def did_you_mean(name, candidates):
    """' Did you mean "x"?' or '' -- for appending to an error message."""
    match = closest(name, candidates)
    return f' Did you mean "{match}"?' if match else ""


def first_line(exc):
    """'ValueError: <first line of its message>' -- an exception inside a one-paragraph error."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class StorageError(KerasclfError):
    """A run artefact could not be written (disk full, quota, read-only); the previous file is intact."""


class RunStopped(Exception):
    """Training ended before its last epoch for a reason that is not bad input.

    Not a KerasclfError: the CLI prints the message and exits with `exit_code`, so scripts
    and schedulers can tell "interrupted" and "diverged" apart from "bad config" (2).
    """

    exit_code = 1

    def __init__(self, message, run_dir=None):
        super().__init__(message)
        self.run_dir = run_dir


class RunInterrupted(RunStopped):
    """SIGINT (Ctrl-C) or SIGTERM: exit 128 + the signal number (130 / 143), the shell convention."""

    def __init__(self, message, signum, run_dir=None):
        super().__init__(message, run_dir)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


class NonFiniteLoss(RunStopped):
    """The training loss became NaN or Inf."""

    exit_code = 3

"""What the console shows: TensorFlow's start-up lines once (or not at all), and the
training verbosity chosen by whether stdout is a terminal.

Why TensorFlow's start-up lines appeared twice: the TF 2.21 wheel logs them (oneDNN note,
"Could not find cuda drivers") from static initialisers through absl *before* absl's log is
initialised, which ignores TF_CPP_MIN_LOG_LEVEL; and two of its shared libraries carry that
code (`_pywrap_tensorflow_internal` and, loaded later by `import tensorflow`,
`profiler/internal/_pywrap_profiler_plugin.so`), so each line is printed twice. On a machine
without a GPU the first device query then logs "E0000 ... failed call to cuInit", which
only says that there is no CUDA device. Those lines are written by C++ to file descriptor 2,
so Python's logging cannot filter them: `import_tensorflow_quietly` points descriptor 2 at
a temporary file while TensorFlow is imported and its devices are listed, then replays what
was captured minus that noise, each line once.
"""

import contextlib
import importlib.util
import logging
import os
import re
import sys
import tempfile
import time
import warnings

# glog/absl line prefix: severity letter, date, time, thread id, file:line]
_PREFIX = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w./-]+:\d+)\] ")
_ABSL_HEADER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def startup_stage_name():
    """What the first slow step is called: TensorFlow's start where it is installed, else Keras's."""
    return "starting TensorFlow" if importlib.util.find_spec("tensorflow") is not None else "starting Keras"


def import_tensorflow_quietly():
    """Import TensorFlow (when installed and not yet imported) with its start-up noise filtered."""
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        gpus = None
        try:
            import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

            gpus = tf.config.list_physical_devices("GPU")  # the CUDA probe logs here, once
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
    kept = filter_startup_lines(text, have_gpu=bool(gpus))
    if kept:
        sys.stderr.write(kept)
        sys.stderr.flush()


# What libjpeg (inside TensorFlow's decoder) prints straight to descriptor 2 about a damaged JPEG.
_LIBJPEG = re.compile(r"^(Corrupt JPEG data|Premature end of JPEG|Improper call to JPEG library|Invalid JPEG|"
                      r"Bogus|Unsupported JPEG|Warning: unknown JFIF|Not a JPEG file|JPEG datastream)")


@contextlib.contextmanager
def native_lines_captured():
    """Descriptor 2 captured while inside (C++ and libjpeg write there, not through Python);
    yields a list that receives, on exit, the libjpeg lines. TensorFlow's log lines are
    replayed through filter_startup_lines (known noise dropped, real errors kept)."""
    found = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield found
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
    other = []
    for line in text.splitlines(keepends=True):
        if _LIBJPEG.match(line.strip()):
            found.append(line.strip())
        elif "oneDNN supports DT_UINT8 only" not in line:  # a CPU note on every first uint8 op
            other.append(line)
    kept = filter_startup_lines("".join(other), have_gpu=False)  # a failing cuInit only says: no GPU
    if kept:
        sys.stderr.write(kept)
        sys.stderr.flush()


def filter_startup_lines(text, have_gpu, min_level=None):
    """TensorFlow's captured start-up output minus duplicates, absl's header, lines below
    TF_CPP_MIN_LOG_LEVEL (0: all, 1: no INFO, 2: no WARNING; kerasclf's CLI sets 2) and, on a
    machine without a GPU, the cuInit failure. Anything else (a real error) is kept, once."""
    if min_level is None:
        try:
            min_level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
        except ValueError:
            min_level = 0
    dropped_levels = "IW"[: max(0, min(min_level, 2))]
    out, seen, keep_continuation = [], set(), True
    for line in text.splitlines(keepends=True):
        match = _PREFIX.match(line)
        if match is None:  # a continuation of the previous log line, or plain Python output
            if line.strip() == _ABSL_HEADER:
                continue
            if keep_continuation or not line.startswith(("To enable", " ")):
                out.append(line)
            continue
        message = line[match.end():]
        keep = (
            match.group(1) not in dropped_levels
            and not (not have_gpu and "failed call to cuInit" in message)
            and (match.group(2), message) not in seen
        )
        seen.add((match.group(2), message))
        keep_continuation = keep
        if keep:
            out.append(line)
    return "".join(out)


def show_warnings_plainly():
    """Warnings on the console as "Warning: <message>" paragraphs, without the file:line and
    source line Python adds (they point into kerasclf, not at anything the user can change).
    Only the format changes, so warnings filters and pytest.warns still see every warning."""
    def format_warning(message, category, filename, lineno, line=None):
        label = "Warning" if issubclass(category, UserWarning) else category.__name__
        return f"{label}: {message}\n"

    warnings.formatwarning = format_warning


_NOTES = None


def show_notes():
    """kerasclf's INFO messages (e.g. the image size chosen for a folder) on stderr as
    "Note: ..." lines; re-pointed at the current sys.stderr on every call."""
    global _NOTES
    logger = logging.getLogger("kerasclf")
    if _NOTES is None:
        _NOTES = logging.StreamHandler(sys.stderr)
        _NOTES.setFormatter(logging.Formatter("Note: %(message)s"))
        logger.addHandler(_NOTES)
        logger.setLevel(logging.INFO)
    else:
        _NOTES.setStream(sys.stderr)


RETRACING_TEXT = "triggered tf.function retracing"


class _DropRetracing:
    """logging filter: TensorFlow's 700-character "N out of the last N calls to <function>
    triggered tf.function retracing" warning. kerasclf calls a model's predict/evaluate on
    inputs of several shapes on purpose (the last, smaller batch; a gallery; the auxiliary
    loss's embedding pass); each new shape traces once, which is expected, not a fault to fix."""

    def filter(self, record):
        return RETRACING_TEXT not in record.getMessage()


def quiet_tensorflow_retracing():
    """Drop the retracing warning from TensorFlow's Python logger (once per process; TensorFlow
    reuses the logger named "tensorflow", so it need not be imported yet)."""

    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _DropRetracing) for f in logger.filters):
        logger.addFilter(_DropRetracing())


def display(path):
    """A path as printable text, even when its bytes are not UTF-8 (shown as \\xNN escapes)."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")



class Stage:
    """What a long stage is doing. Piped (a log, CI), one line per stage when it starts, as a
    kerasclf note ("Note: decoding 60,000 image files at 32x32 ..."), so a log never sits silent;
    on a terminal a bar on stderr, redrawn in place by `update(done)` and closed with the
    stage's seconds.

        with Stage("decoding 60,000 image files", total=60000) as stage:
            for batch in batches:
                stage.update(stage.done + len(batch))
    """

    WIDTH = 30

    def __init__(self, text, total=None, stream=None, quiet=False):
        self.text, self.total, self.done, self.quiet = text, total, 0, quiet
        self.stream = stream or sys.stderr
        self.terminal = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __enter__(self):
        self.started = time.perf_counter()
        if self.quiet:
            self.terminal = False
        elif self.terminal:
            # the terminal itself, not descriptor 2: a decode may capture that (native_lines_captured)
            self.stream = os.fdopen(os.dup(self.stream.fileno()), "w")
            self._draw()
        else:
            logging.getLogger("kerasclf").info("%s ...", self.text[:1].upper() + self.text[1:])
        return self

    def _draw(self):
        line = f"\r{self.text[:1].upper() + self.text[1:]} ..."
        if self.total:
            filled = int(self.WIDTH * min(self.done, self.total) / self.total)
            line += f" [{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done:,}/{self.total:,}"
        self.stream.write(line)
        self.stream.flush()

    def update(self, done):
        self.done = done
        if self.terminal:
            self._draw()

    def __exit__(self, exc_type, exc, tb):
        if self.terminal:
            seconds = time.perf_counter() - self.started
            self.stream.write(f"\r\033[K{self.text[:1].upper() + self.text[1:]}: "
                              f"{'failed after ' if exc_type else ''}{seconds:.1f} s\n")
            self.stream.close()
        return False

"""The constraint vocabulary: what a config key's value must be.

Every key is declared with `key(default, check, help=...)`: `check` is a callable
value -> None when the value is valid, else what it must be (a text, or (text, ' Did you
mean "x"?')); `help` is the one-line description docs/config.md is generated from.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import kerasclf.registry as registries
from kerasclf.config.trainable import TRAINABLE_HELP, parse_trainable_or_none
from kerasclf.errors import did_you_mean

Problem = Optional[Any]  # None, "what it must be", or ("what it must be", ' Did you mean "x"?')


@dataclass(frozen=True)
class Range:
    """lo <= value <= hi (open ends with lo_open / hi_open); None is allowed when the type is Optional."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False

    def __call__(self, value) -> Problem:
        low_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        high_ok = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return None if low_ok and high_ok else self.describe()

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"


def _num(x):
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class OneOf:
    values: tuple

    def __call__(self, value) -> Problem:
        # `is` for booleans: 1 == True in Python, but verbose=1 is not jit_compile=true
        if any(value is v or (type(value) is type(v) and value == v) for v in self.values):
            return None
        shown = ", ".join("true" if v is True else "false" if v is False else str(v) for v in self.values)
        return f"one of {shown}", did_you_mean(value, [str(v) for v in self.values])


@dataclass(frozen=True)
class Registered:
    """A name in one of kerasclf.registry's registries (loaded on first use)."""

    registry: str  # attribute name in kerasclf.registry: MODELS, LOSSES, OPTIMIZERS, SCHEDULES, ...
    also: tuple = ()  # values accepted besides the registered names ("none")

    def __call__(self, value) -> Problem:
        registry = getattr(registries, self.registry)
        names = registry.static_names()  # built-in names read from source: no Keras import here
        if value in names or value in self.also:
            return None
        listing = f" (`kerasclf {registry.list_command}` lists them)" if registry.list_command else ""
        choices = ", ".join([*self.also, *names])
        return f"a registered {registry.kind}: one of {choices}{listing}", did_you_mean(value, [*self.also, *names])


def key(default=None, check: Optional[Callable] = None, factory: Optional[Callable] = None, help: str = ""):
    """A config field: its default, its constraint and its help text (docs/config.md)."""
    metadata = {"check": check, "help": help}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def section(cls, help: str):
    """A nested section (a dataclass) with its help text."""
    return field(default_factory=cls, metadata={"check": None, "help": help})


FOLDER_PREFIX = "folder:"
UNIT = Range(0, 1, hi_open=True)  # a fraction or probability that must leave something
POSITIVE = Range(0, None, lo_open=True)
AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
SEED = Range(0, 2**32 - 1)


def trainable_spec(value) -> Problem:
    return None if parse_trainable_or_none(value) else TRAINABLE_HELP


def image_size(value) -> Problem:
    if len(value) == 2 and all(1 <= s <= 8192 for s in value):
        return None
    return "[height, width] with both from 1 to 8192"


def run_name(value) -> Problem:
    return None if value.strip() and "/" not in value and value not in (".", "..") else "a non-empty name without '/'"


def source(value) -> Problem:
    if value.startswith(FOLDER_PREFIX):
        return None if value[len(FOLDER_PREFIX):].strip() else "folder:/path/to/images (the path is missing)"
    problem = Registered("DATASETS")(value)
    return problem and (f"{problem[0]}, or {FOLDER_PREFIX}/path/to/your/images", problem[1])


def classes(value) -> Problem:
    if isinstance(value, str) and value.startswith("first:"):
        count = value.split(":", 1)[1].strip()
        return None if count.isdigit() and int(count) >= 1 else "'first:N' with N >= 1, or a list of class names"
    names = value if isinstance(value, list) else [n for n in str(value).split(",") if n.strip()]
    if not names:
        return "class names or 'first:N' (leave it out for all classes)"
    if len(set(map(str, names))) != len(names):
        return "class names without repeats"
    return None


def host_ports(value):
    """train.hosts: host:port addresses, one per process."""
    for host in value:
        name, _, port = str(host).rpartition(":")
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            return f"a list of host:port addresses, process 0 first (e.g. [node1:1234, node2:1234]); {host!r} is not one"
    return None

"""`model.trainable` / `train.finetune_trainable` specs: full | head | last:N | from:<layer>."""

import re
from typing import Optional, Union

from kerasclf.errors import ConfigError

TRAINABLE_HELP = (
    "full (train everything), head (only the new classification head), last:N (the last N "
    "weight layers, N >= 1) or from:<layer_name> (that layer and everything after it)"
)


def parse_trainable(spec) -> tuple[str, Union[int, str, None]]:
    """'last:3' -> ('last', 3); 'from:block5_conv1' -> ('from', 'block5_conv1'); ConfigError otherwise."""
    parsed = parse_trainable_or_none(spec)
    if parsed is None:
        raise ConfigError(f"model.trainable = {spec!r} is not a freeze policy. Valid forms: {TRAINABLE_HELP}.")
    return parsed


def parse_trainable_or_none(spec) -> Optional[tuple[str, Union[int, str, None]]]:
    text = "full" if spec is None else str(spec).strip()
    if text in ("full", "head"):
        return text, None
    match = re.fullmatch(r"last:\s*(\d+)", text)
    if match and int(match.group(1)) >= 1:
        return "last", int(match.group(1))
    match = re.fullmatch(r"from:\s*(\S.*)", text)
    if match:
        return "from", match.group(1).strip()
    return None

"""ImageNet-1k class names (from KerasHub, not a copy) and the shipped label mappings.

A mapping (`mappings/<name>.yaml`) assigns ImageNet class indices to each target class;
every ImageNet class it does not list is "other". Each entry names the class too
(`404: airliner`), so a reviewer reads the table without the index list at hand; the
names are checked against KerasHub's list when the table is loaded.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from kerasclf.errors import ConfigError

MAPPINGS = Path(__file__).with_name("mappings")
NUM_IMAGENET = 1000
OTHER = "other"


def imagenet_names():
    """The 1000 ImageNet-1k class names in index order, from KerasHub."""
    try:
        # optional dependency (kerasclf[hub]); importing KerasHub also imports TensorFlow when installed
        from keras_hub.utils import imagenet_id_to_name  # lazy: keras-hub is an optional extra
    except ImportError:
        raise ConfigError(
            "The ImageNet class names come from KerasHub, which is not installed: pip install 'kerasclf[hub]' "
            "(or pip install keras-hub)."
        ) from None
    return [imagenet_id_to_name(i) for i in range(NUM_IMAGENET)]


@dataclass
class Mapping:
    target: str
    class_names: list  # the target classes, in the table's order
    imagenet: dict  # target class -> {imagenet index: name}
    notes: dict  # target class -> the reviewer's note

    @property
    def labels(self):
        """The columns of a zero-shot confusion matrix: the target classes, then "other"."""
        return [*self.class_names, OTHER]

    def target_index(self):
        """(1000,) int array: ImageNet index -> target class index, len(class_names) for other."""
        table = np.full(NUM_IMAGENET, len(self.class_names), np.int64)
        for c, name in enumerate(self.class_names):
            table[list(self.imagenet[name])] = c
        return table


def builtin_mappings():
    return sorted(p.stem for p in MAPPINGS.glob("*.yaml"))


def load_mapping(name_or_path, names=None):
    """A shipped mapping by name (`kerasclf zeroshot --classes cifar10`) or a YAML file of the
    same form; checked: indices in 0..999, none listed twice, names equal to `names`
    (KerasHub's list when None)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = MAPPINGS / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"No label mapping {str(name_or_path)!r}: use one of {', '.join(builtin_mappings())} or the path of a "
            "YAML file like kerasclf/features/mappings/stl10.yaml."
        )
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    classes = raw.get("classes") or {}
    mapping = Mapping(
        target=str(raw.get("target", path.stem)),
        class_names=[str(c) for c in classes],
        imagenet={str(c): {int(i): str(n) for i, n in (v.get("imagenet") or {}).items()} for c, v in classes.items()},
        notes={str(c): str(v.get("note", "")) for c, v in classes.items()},
    )
    problems = check_mapping(mapping, imagenet_names() if names is None else names)
    if problems:
        raise ConfigError(f"The label mapping {path} is not valid: " + "; ".join(problems[:10]) + ".")
    return mapping


def check_mapping(mapping, names):
    """Problems of a mapping as sentences (empty: valid)."""
    problems, seen = [], {}
    if len(mapping.class_names) < 2:
        problems.append("it needs at least 2 target classes")
    for target, entries in mapping.imagenet.items():
        if not entries:
            problems.append(f"{target!r} lists no ImageNet class")
        for index, name in entries.items():
            if not 0 <= index < len(names):
                problems.append(f"{target!r} lists index {index}, outside 0..{len(names) - 1}")
                continue
            if names[index] != name:
                problems.append(f"{target!r} lists {index}: {name!r} but ImageNet class {index} is {names[index]!r}")
            if index in seen:
                problems.append(f"ImageNet class {index} ({names[index]}) is mapped to both {seen[index]!r} and {target!r}")
            seen[index] = target
    return problems

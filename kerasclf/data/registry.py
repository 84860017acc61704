"""The data set registry: `@register_dataset("name")` on `fn(cfg, cache_dir) -> RawDataset`."""

from dataclasses import dataclass, field

from kerasclf.registry import DATASETS

register_dataset = DATASETS.register


@dataclass
class RawDataset:
    """What a source yields: named splits ("train", optionally "val", "test") and class names."""

    splits: dict
    class_names: list
    notes: dict = field(default_factory=dict)  # facts a run records, e.g. {"skipped_files": ...}

"""What a model needs to know about its data, without the data."""

from dataclasses import dataclass, field


@dataclass
class DatasetInfo:
    source: str  # the data spec as the user wrote it: "cifar10", "folder:/path"
    class_names: list
    image_size: tuple  # (height, width) fed to the model
    channels: int = 3
    mean: list = field(default_factory=lambda: [127.5, 127.5, 127.5])  # train split, 0..255 units
    std: list = field(default_factory=lambda: [64.0, 64.0, 64.0])
    task: str = "multiclass"  # decides the model's head, the loss and the reports (kerasclf.registry.HEADS)

    @property
    def num_classes(self):
        return len(self.class_names)

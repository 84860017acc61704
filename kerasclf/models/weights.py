"""Loading a local weights file into a whole model, with a clear message when it does not fit."""

from pathlib import Path

from kerasclf.errors import ModelError


def load_full_weights(model, path):
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(
            f"model.weights points to {str(path)!r}, which does not exist. Pass an existing "
            "'.weights.h5' file, 'imagenet' for a pretrained backbone, or 'none'."
        )
    try:
        model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError with deep detail
        raise ModelError(
            f"Could not load weights from {str(path)!r} into model '{model.name}': "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. The file must "
            "come from the same model with the same number of classes and input size."
        ) from None

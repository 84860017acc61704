"""Loading a `.weights.h5` file (model.save_weights) into a whole model of the same architecture.

A `.keras` checkpoint in model.weights is transfer learning from one of your own runs:
see kerasclf.checkpoint.transfer_from_checkpoint.
"""

from pathlib import Path

from kerasclf.errors import ModelError, first_line


def load_full_weights(model, path):
    path = Path(path).expanduser()  # exists: kerasclf.config checked model.weights
    try:
        model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError with deep detail
        raise ModelError(
            f"Could not load weights from {str(path)!r} into model '{model.name}': "
            f"{first_line(exc)}. The file must "
            "come from the same model with the same number of classes and input size."
        ) from None
    return {"loaded": "all"}

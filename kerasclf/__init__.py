"""kerasclf: one-command image-classification and transfer-learning experiments on Keras 3.

Importing the package is cheap: TensorFlow, JAX and Keras are imported lazily by the
modules that need them, so `kerasclf --help` stays fast.
"""

__version__ = "0.1.0"

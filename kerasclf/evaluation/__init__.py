"""Evaluation reports: metrics (scikit-learn), figures (matplotlib) and report writing.

Submodules are imported explicitly (``from kerasclf.evaluation import report``) so that
importing the package stays cheap; nothing here imports Keras or TensorFlow.
"""

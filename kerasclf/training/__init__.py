"""Optimizers, schedules, callbacks, run directories and the training loop."""

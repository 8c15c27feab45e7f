"""Training: the :class:`~unpaired.training.trainer.Trainer` (devices, precision, distribution,
schedules, checkpoints, logging), its callbacks, the training step, and profiling. Never imports
inference: validation and samples run generators through :mod:`unpaired.tiling`."""

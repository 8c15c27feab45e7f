"""Training: the :class:`~unpaired.training.trainer.Trainer` (its phases and loop), what it is made of
(:mod:`.parts`: model, optimizers, schedules, step), its collaborators (:mod:`.logging`,
:mod:`.validation`, :mod:`.divergence`, :mod:`.memory`), its callbacks, the training step, and
profiling. Never imports inference: validation and samples run generators through :mod:`unpaired.tiling`."""

"""Training layer: Learner, one-cycle schedules and lr_find, metrics, losses, checkpoints."""

"""Export layer: the one-file `.pixclass` bundle and the `Predictor` that loads it (models + data only)."""

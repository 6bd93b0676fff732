"""Interpretation of a trained model on a labelled split: confusion matrices, most confused
pairs, per-item losses and top losses, per-class precision/recall/F1, and their plots.

A workflow layer: it may import data, models and train; nothing below it imports it.
"""

from pixclass.interpret.interpretation import Interpretation

__all__ = ["Interpretation"]

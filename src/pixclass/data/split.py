"""Train/validation splits: by an explicit flag, or a seeded random fraction.

Owns: turning `Items` into index lists for train and valid, repeatably for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pixclass.errors import PixclassError


def random_split(n: int, valid_pct: float = 0.2, seed: int | None = 42) -> tuple[list[int], list[int]]:
    """Shuffle `range(n)` with `seed` and hold out `valid_pct` of it (at least one item)."""
    if not 0.0 <= valid_pct < 1.0:
        raise PixclassError(f"valid_pct must be in [0, 1); got {valid_pct}")
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(n * valid_pct))
    if valid_pct > 0 and n_valid == 0 and n > 1:
        n_valid = 1
    return sorted(order[n_valid:].tolist()), sorted(order[:n_valid].tolist())


def flag_split(is_valid: Sequence[bool]) -> tuple[list[int], list[int]]:
    """Indices of the False (train) and True (valid) flags."""
    train = [i for i, v in enumerate(is_valid) if not v]
    valid = [i for i, v in enumerate(is_valid) if v]
    return train, valid

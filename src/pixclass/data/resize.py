"""The resize methods (fastai's `ResizeMethod`): their names, what each does, and the default.

How a picture of any shape becomes the model's square input; `preprocess.fit_square` does it.
Import-light (no numpy, no Pillow): the CLI names the choices and the default at start-up.
"""

from __future__ import annotations

from pixclass.errors import PixclassError

# What each method does, in the words `pixclass train --help` and `pixclass info` use.
RESIZE_METHODS: dict[str, str] = {
    "crop": "shorter side to the size, center square (a wide picture loses its sides)",
    "pad": "longer side to the size, borders filled by reflection (all kept, smaller)",
    "squish": "stretched to the square (all kept, distorted)",
}
# The default, measured by benchmarks/bench_resize.py: the linear probe on efficientnet_lite0's
# frozen features, 3 seeds per set (see benchmarks/README.md).
DEFAULT_RESIZE = "crop"


def check_resize(method: str) -> str:
    """`method` if it is one of `RESIZE_METHODS`, else one `PixclassError` line naming the choices."""
    if method not in RESIZE_METHODS:
        raise PixclassError(f"unknown resize method {method!r}: choose one of {', '.join(RESIZE_METHODS)}")
    return method

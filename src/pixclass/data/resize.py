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
# "squish", measured by benchmarks/bench_resize.py: the linear probe on efficientnet_lite0's frozen
# features (224 px) on varied-aspect sets (1:1 to 3:1), mean of 5 seeds, crop → squish: Fashion-
# MNIST composites 65.9 → 70.1 %, digit composites 58.3 → 64.9 %, photo patches 92.2 → 93.7 %
# (squish ≥ crop in 14 of 15 set-seeds); pad (reflection) 69.3 / 57.6 / 91.8. A square picture
# (elpv) is the same under every method. fastai's default is crop.
DEFAULT_RESIZE = "squish"


def check_resize(method: str) -> str:
    """`method` if it is one of `RESIZE_METHODS`, else one `PixclassError` line naming the choices."""
    if method not in RESIZE_METHODS:
        raise PixclassError(f"unknown resize method {method!r}: choose one of {', '.join(RESIZE_METHODS)}")
    return method

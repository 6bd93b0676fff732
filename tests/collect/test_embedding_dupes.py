"""Near duplicates by embedding similarity: `embedding_pairs`, `find_duplicates`
with embeddings, and `pixclass dupes RUN --embeddings`."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from imagefiles import save_image, write_class_folders
from pixclass.cli import main
from pixclass.collect.dupes import DupePair, find_duplicates
from pixclass.collect.embedding_dupes import embedding_pairs


def look_alikes(n: int, copies: int, seed: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """n rows sharing one direction (unrelated rows at cosine ~0.8), then `copies` rows at cosine
    0.96..0.999 to a random earlier row; the planted pairs."""
    rng = np.random.default_rng(seed)
    common, spread = rng.standard_normal(64), rng.standard_normal((n, 64))
    x = common / np.linalg.norm(common) + 0.5 * spread / np.linalg.norm(spread, axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    planted = set()
    rows = [x]
    for k in range(copies):
        source = int(rng.integers(n))
        w = rng.standard_normal(64)
        w -= (w @ x[source]) * x[source]
        cos = rng.uniform(0.96, 0.999)
        rows.append((cos * x[source] + np.sqrt(1 - cos ** 2) * w / np.linalg.norm(w))[None] * 3.0)  # any length
        planted.add((source, n + k))
    return np.concatenate(rows), planted


def brute_force(x: np.ndarray, t: float) -> list[tuple[int, int]]:
    """Every pair by one full (N, N) product in float64."""
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    i, j = np.nonzero(np.triu(z @ z.T >= t, k=1))
    return list(zip(i.tolist(), j.tolist()))


def test_the_search_finds_exactly_the_pairs_brute_force_finds_with_their_cosines():
    x, planted = look_alikes(2500, 200, seed=1)  # more rows than one block
    pairs = embedding_pairs(x, 0.95)
    assert [(i, j) for i, j, _ in pairs] == brute_force(x, 0.95)
    assert planted <= {(i, j) for i, j, _ in pairs}
    i, j, cos = pairs[0]
    assert cos == pytest.approx(x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j]), abs=1e-5)


def test_zero_rows_pair_with_nothing_and_a_wrong_shape_is_refused():
    x = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    assert embedding_pairs(x, 0.9) == [(0, 3, 1.0)]
    assert embedding_pairs(x, -1.0) == [(0, 3, 1.0)]
    with pytest.raises(ValueError, match="2-d"):
        embedding_pairs(np.zeros(5), 0.9)
    with pytest.raises(ValueError, match="between -1 and 1"):
        embedding_pairs(x, 1.5)


def test_similar_embeddings_make_a_near_pair_and_across_splits_a_leak(tmp_path):
    files = [save_image(tmp_path / f"{name}.png", colour, seed) for name, colour, seed in
             [("a", (200, 30, 30), 1), ("b", (30, 200, 30), 2), ("c", (30, 30, 200), 3)]]
    features = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.99, 0.1, 0.0]])
    report = find_duplicates(files, embeddings=features, min_cosine=0.95, workers=1)
    distance = round(1 - 0.99 / np.hypot(0.99, 0.1), 4)
    assert report.pairs == [DupePair(files[0], files[2], "near", distance, "embedding")]
    report = find_duplicates(files, embeddings=features, split_of={files[0]: "train", files[2]: "valid"}, workers=1)
    assert report.pairs == [DupePair(files[0], files[2], "leak", distance, "embedding")]
    with pytest.raises(ValueError, match="2 embeddings for 3 files"):
        find_duplicates(files, embeddings=features[:2])


def test_cli_embeddings_of_a_run_pair_its_own_train_and_valid_images(tmp_path, capsys):
    from pixclass.train.recipe import TrainConfig, run

    data = tmp_path / "data"
    write_class_folders(data / "train", 4, seed=1)
    write_class_folders(data / "valid", 2, seed=2)
    shutil.copyfile(data / "train" / "red" / "red_0.jpg", data / "valid" / "red" / "leaked.jpg")
    run(TrainConfig(data=str(data), out=str(tmp_path / "run"), arch="test_efficientnet", pretrained=False,
                    size=32, bs=8, num_workers=0, epochs=1, unfreeze_epochs=0, lr=1e-2), progress=False)
    with pytest.raises(SystemExit) as exit_info:  # -1: every pair is similar enough
        main(["dupes", str(tmp_path / "run"), "--embeddings", "--min-cosine", "-1", "--csv", str(tmp_path / "d.csv")])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    with open(tmp_path / "d.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    n_train, n_valid = 12, 7
    assert out.splitlines()[0] == f"body features of {n_train + n_valid} images (test_efficientnet, 32 px)..."
    assert len(rows) == (n_train + n_valid) * (n_train + n_valid - 1) // 2
    assert sum(r["kind"] == "leak" for r in rows) == n_train * n_valid
    leaked = [r for r in rows if r["b"].endswith("leaked.jpg") and r["a"].endswith("red_0.jpg")]
    assert [(r["kind"], r["distance"], r["method"]) for r in leaked] == [("leak", "0", "content")]
    assert {r["method"] for r in rows} <= {"content", "phash", "embedding"}
    assert sum(r["method"] == "embedding" for r in rows) > 0


def test_cli_embeddings_of_a_folder_that_is_not_a_run_say_so_in_one_line(tmp_path, capsys):
    save_image(tmp_path / "a.png", (200, 30, 30), 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["dupes", str(tmp_path), "--embeddings"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (f"pixclass: cannot compare the features of '{tmp_path}': it is not a "
                                       "training run (no config.json)\n")

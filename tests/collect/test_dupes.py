"""Duplicate and leak finding: exact copies, near copies, leaks across splits, the multi-index, `pixclass dupes`."""

from __future__ import annotations

import csv
import itertools
import json
import random
import shutil
import subprocess
import sys

import imagehash
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from pixclass.cli import main
from pixclass.collect.dupes import MAX_DISTANCE, DupePair, find_duplicates, near_pairs
from pixclass.data.images import open_image


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    """Ten unrelated real photos: scikit-learn's china and flower, and the four quadrants of each."""
    out = {}
    for name, arr in zip(["china", "flower"], load_sample_images().images):
        img = Image.fromarray(arr).resize((320, 214))
        out[name] = img
        w, h = img.size
        for i, (x, y) in enumerate([(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)]):
            out[f"{name}-q{i}"] = img.crop((x, y, x + w // 2, y + h // 2))
    return out


def phash_distance(a, b) -> int:
    return imagehash.phash(open_image(a)) - imagehash.phash(open_image(b))


def test_byte_identical_copies_under_other_names_are_exact_pairs(tmp_path, photos):
    photos["china"].save(tmp_path / "china.png")
    (tmp_path / "other").mkdir()
    shutil.copyfile(tmp_path / "china.png", tmp_path / "other" / "copy.png")
    photos["flower"].save(tmp_path / "flower.png")
    report = find_duplicates([tmp_path / "china.png", tmp_path / "other" / "copy.png", tmp_path / "flower.png"])
    assert report.pairs == [DupePair(tmp_path / "china.png", tmp_path / "other" / "copy.png", "exact", 0, "content")]
    assert report.files == 3 and report.skipped == []


def test_a_trimmed_and_resized_copy_is_a_near_pair_with_its_hash_distance(tmp_path, photos):
    original = photos["flower"]
    original.save(tmp_path / "flower.png")
    original.crop((3, 2, 317, 212)).resize((160, 107), Image.BILINEAR).save(tmp_path / "small.png")
    expected = phash_distance(tmp_path / "flower.png", tmp_path / "small.png")
    report = find_duplicates([tmp_path / "flower.png", tmp_path / "small.png"], workers=1)
    assert 0 < expected <= MAX_DISTANCE
    assert report.pairs == [DupePair(tmp_path / "flower.png", tmp_path / "small.png", "near", expected)]


def test_unrelated_photos_are_not_paired(tmp_path, photos):
    for name, img in photos.items():
        img.save(tmp_path / f"{name}.png")
    report = find_duplicates(sorted(tmp_path.iterdir()))
    assert report.pairs == [] and report.files == 10


def test_a_copy_in_train_and_valid_is_a_leak(tmp_path, photos):
    (tmp_path / "train" / "x").mkdir(parents=True)
    (tmp_path / "valid" / "x").mkdir(parents=True)
    photos["china"].save(tmp_path / "train" / "x" / "a.png")
    shutil.copyfile(tmp_path / "train" / "x" / "a.png", tmp_path / "valid" / "x" / "b.png")
    photos["china"].crop((3, 2, 317, 212)).resize((160, 107)).save(tmp_path / "valid" / "x" / "c.png")
    files = sorted(tmp_path.rglob("*.png"))
    split_of = {p: p.relative_to(tmp_path).parts[0] for p in files}
    report = find_duplicates(files, split_of=split_of, workers=1)
    near = phash_distance(tmp_path / "train" / "x" / "a.png", tmp_path / "valid" / "x" / "c.png")
    assert report.pairs == [
        DupePair(tmp_path / "train" / "x" / "a.png", tmp_path / "valid" / "x" / "b.png", "leak", 0, "content"),
        *sorted([DupePair(tmp_path / "train" / "x" / "a.png", tmp_path / "valid" / "x" / "c.png", "leak", near),
                 DupePair(tmp_path / "valid" / "x" / "b.png", tmp_path / "valid" / "x" / "c.png", "near", near)],
                key=lambda p: str(p.a)),
    ]
    assert report.count("leak") == 2 and report.count("near") == 1


def test_unreadable_files_are_skipped_and_counted(tmp_path, photos):
    photos["china"].save(tmp_path / "good.png")
    (tmp_path / "page.jpg").write_text("<html><body>not found</body></html>")
    (tmp_path / "empty.jpg").write_bytes(b"")
    report = find_duplicates([tmp_path / "good.png", tmp_path / "page.jpg", tmp_path / "empty.jpg"], workers=1)
    assert report.pairs == []
    assert [path for path, _ in report.skipped] == [tmp_path / "page.jpg", tmp_path / "empty.jpg"]
    assert str(report) == "3 files: 0 exact pairs, 0 near pairs, 0 leaks; 2 unreadable files skipped"


@pytest.mark.parametrize("max_distance", [0, 1, 4, MAX_DISTANCE, 10])
def test_the_multi_index_finds_exactly_the_pairs_brute_force_finds(max_distance):
    rng = random.Random(1234 + max_distance)
    hashes = [rng.getrandbits(64) for _ in range(300)]
    for _ in range(80):  # planted copies at distances up to max_distance + 1 (some just out of reach)
        h = rng.choice(hashes)
        for bit in rng.sample(range(64), rng.randint(0, max_distance + 1)):
            h ^= 1 << bit
        hashes.append(h)
    brute = [(i, j, (hashes[i] ^ hashes[j]).bit_count())
             for i in range(len(hashes)) for j in range(i + 1, len(hashes))
             if (hashes[i] ^ hashes[j]).bit_count() <= max_distance]
    assert len(brute) >= 25  # the planted pairs within reach, at least
    assert near_pairs(hashes, max_distance) == brute


def run_cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:  # the entry point always exits
        main(args)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_cli_writes_every_pair_to_the_csv_with_valid_quoting(tmp_path, photos, capsys):
    data = tmp_path / "data"
    (data / "train" / "cats").mkdir(parents=True)
    (data / "valid" / "cats").mkdir(parents=True)
    photos["china"].save(data / "train" / "cats" / "a, b.png")  # a comma in a name must be quoted
    shutil.copyfile(data / "train" / "cats" / "a, b.png", data / "train" / "cats" / "copy.png")
    shutil.copyfile(data / "train" / "cats" / "a, b.png", data / "valid" / "cats" / "leaked.png")
    photos["flower"].save(data / "valid" / "cats" / "flower.png")
    code, out, err = run_cli(["dupes", str(data), "--csv", str(tmp_path / "pairs.csv")], capsys)
    assert code == 0, err
    assert out.splitlines()[-1] == "4 files: 1 exact pairs, 0 near pairs, 2 leaks"
    with open(tmp_path / "pairs.csv", newline="") as f:
        rows = list(csv.reader(f))
    first, copy, leaked = (str(data / p)
                           for p in ("train/cats/a, b.png", "train/cats/copy.png", "valid/cats/leaked.png"))
    assert rows == [["a", "b", "kind", "distance", "method"], [first, copy, "exact", "0", "content"],
                    [first, leaked, "leak", "0", "content"], [copy, leaked, "leak", "0", "content"]]


def test_cli_reads_the_data_folder_of_a_run(tmp_path, photos, capsys):
    (tmp_path / "data" / "x").mkdir(parents=True)
    photos["china"].save(tmp_path / "data" / "x" / "a.png")
    shutil.copyfile(tmp_path / "data" / "x" / "a.png", tmp_path / "data" / "x" / "b.png")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"data": str(tmp_path / "data")}))
    code, out, _ = run_cli(["dupes", str(tmp_path / "run")], capsys)
    assert code == 0
    assert out.splitlines() == [f"exact (content 0): {tmp_path / 'data/x/a.png'}  {tmp_path / 'data/x/b.png'}",
                                "2 files: 1 exact pairs, 0 near pairs, 0 leaks"]


def test_cli_on_a_missing_folder_says_so_in_one_line_and_exits_1(tmp_path, capsys):
    code, out, err = run_cli(["dupes", str(tmp_path / "nowhere")], capsys)
    assert code == 1 and out == ""
    assert err == f"pixclass: '{tmp_path / 'nowhere'}' is not a folder: pass an image folder or a run folder\n"


def test_the_dupes_verb_does_not_import_torch():
    code = ("import sys, pixclass.cli.dupes, pixclass.collect.dupes; "
            "print(sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def write_test_set(folder, photos) -> dict:
    """Each of the ten photos with four copies (byte copy, JPEG q75, half size, cropped 1 % per side),
    and 21 elpv solar cells (every 131st: different cells of one look-alike product). Returns
    {file: family}: files of one family are duplicates of each other, of two families never."""
    from pixclass.demo.elpv import elpv_items

    family = {}
    for name, img in photos.items():
        w, h = img.size
        files = [folder / f"{name}.png", folder / f"{name}-copy.png", folder / f"{name}-q75.jpg",
                 folder / f"{name}-half.png", folder / f"{name}-crop.png"]
        img.save(files[0])
        shutil.copyfile(files[0], files[1])
        img.save(files[2], quality=75)
        img.resize((w // 2, h // 2), Image.BILINEAR).save(files[3])
        img.crop((w // 100, h // 100, w - w // 100, h - h // 100)).save(files[4])
        family |= dict.fromkeys(files, name)
    cells, _ = elpv_items("type")
    for k in range(0, len(cells), 131):
        shutil.copyfile(cells[k], folder / f"elpv-{k}.png")
        family[folder / f"elpv-{k}.png"] = f"elpv-{k}"
    return family


def test_the_test_set_gives_every_exact_pair_at_least_90_percent_of_near_pairs_and_no_false_pair(tmp_path, photos):
    pytest.importorskip("elpv_dataset")
    family = write_test_set(tmp_path, photos)
    report = find_duplicates(sorted(family), workers=2)
    found = {(p.a, p.b): p.kind for p in report.pairs}
    same = [(a, b) for a, b in itertools.combinations(sorted(family), 2) if family[a] == family[b]]
    exact = [(a, b) for a, b in same if a.name.replace("-copy", "") == b.name.replace("-copy", "")]
    near = [pair for pair in same if pair not in exact]
    assert (len(family), len(exact), len(near)) == (71, 10, 90)
    assert [found.get(pair) for pair in exact] == ["exact"] * 10
    assert sum(found.get(pair) == "near" for pair in near) >= 0.9 * len(near)
    assert [(p.a.name, p.b.name) for p in report.pairs if family[p.a] != family[p.b]] == []

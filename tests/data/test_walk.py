"""The one folder walk: hidden names skipped, folder links followed once, broken links reported.

Verify (`find_candidates`) and training (`sources.image_files`, `from_folder`) list files with it,
so what verify checked is what training reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagefiles import save_image
from pixclass.collect.verify import find_candidates
from pixclass.data.sources import from_folder, image_files
from pixclass.data.walk import broken_link_reason, walk_files

RED = (200, 30, 30)


def rel(root: Path, paths: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """cats/{a,b}.jpg, dogs/c.png, a hidden folder, a hidden file and a text file."""
    root = tmp_path / "data"
    save_image(root / "cats" / "a.jpg", RED, 1)
    save_image(root / "cats" / "b.jpg", RED, 2)
    save_image(root / "dogs" / "c.png", RED, 3)
    save_image(root / ".quarantine" / "cats" / "old.jpg", RED, 4)
    save_image(root / "cats" / ".hidden.jpg", RED, 5)
    (root / "notes.txt").write_text("remember the milk")
    return root


def test_the_walk_lists_every_non_hidden_file_sorted(tree):
    found = walk_files(tree)
    assert rel(tree, found.files) == ["cats/a.jpg", "cats/b.jpg", "dogs/c.png", "notes.txt"]
    assert found.broken == []


def test_without_recursion_only_the_files_of_the_folder_itself_are_listed(tree):
    assert rel(tree, walk_files(tree, recurse=False).files) == ["notes.txt"]


def test_skipped_sub_folders_are_not_entered(tree):
    assert rel(tree, walk_files(tree, skip=["cats"]).files) == ["dogs/c.png", "notes.txt"]


def test_a_symlinked_folder_is_followed(tree, tmp_path):
    save_image(tmp_path / "elsewhere" / "birds" / "d.jpg", RED, 6)
    (tree / "birds").symlink_to(tmp_path / "elsewhere" / "birds")
    assert "birds/d.jpg" in rel(tree, walk_files(tree).files)


def test_a_link_back_to_an_ancestor_is_not_walked_again(tree):
    (tree / "cats" / "loop").symlink_to("..")
    found = walk_files(tree)
    assert rel(tree, found.files) == ["cats/a.jpg", "cats/b.jpg", "dogs/c.png", "notes.txt"]


def test_a_folder_reachable_directly_and_through_a_link_is_listed_once_under_its_own_name(tree):
    (tree / "aaa_alias").symlink_to("cats")  # sorts before cats: the real folder still wins
    assert rel(tree, walk_files(tree).files) == ["cats/a.jpg", "cats/b.jpg", "dogs/c.png", "notes.txt"]


def test_a_link_to_a_file_is_listed_like_a_file(tree):
    (tree / "dogs" / "alias.jpg").symlink_to(tree / "cats" / "a.jpg")
    assert "dogs/alias.jpg" in rel(tree, walk_files(tree).files)


def test_a_dangling_link_is_reported_as_broken(tree):
    (tree / "cats" / "gone.jpg").symlink_to(tree / "nowhere.jpg")
    found = walk_files(tree)
    assert rel(tree, found.broken) == ["cats/gone.jpg"]
    assert "cats/gone.jpg" not in rel(tree, found.files)
    reason = broken_link_reason(tree / "cats" / "gone.jpg")
    assert reason == f"dangling symbolic link to '{tree / 'nowhere.jpg'}' (no such file)"


def test_a_loop_of_file_links_is_reported_as_broken(tree):
    (tree / "cats" / "x.jpg").symlink_to("y.jpg")
    (tree / "cats" / "y.jpg").symlink_to("x.jpg")
    assert rel(tree, walk_files(tree).broken) == ["cats/x.jpg", "cats/y.jpg"]
    assert broken_link_reason(tree / "cats" / "x.jpg") == "symbolic link loop (points to 'y.jpg')"


def test_a_working_link_or_a_plain_file_has_no_broken_link_reason(tree):
    (tree / "dogs" / "alias.jpg").symlink_to(tree / "cats" / "a.jpg")
    assert broken_link_reason(tree / "dogs" / "alias.jpg") is None
    assert broken_link_reason(tree / "cats" / "a.jpg") is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_a_pipe_is_neither_a_file_nor_a_broken_link(tree):
    os.mkfifo(tree / "cats" / "pipe.jpg")
    found = walk_files(tree)
    assert "cats/pipe.jpg" not in rel(tree, found.files + found.broken)


def test_training_lists_broken_links_so_reading_them_names_the_file(tree):
    (tree / "cats" / "gone.jpg").symlink_to(tree / "nowhere.jpg")
    assert rel(tree, image_files(tree)) == ["cats/a.jpg", "cats/b.jpg", "cats/gone.jpg", "dogs/c.png"]


def test_training_reads_a_symlinked_class_folder_under_the_link_s_name(tree, tmp_path):
    save_image(tmp_path / "elsewhere" / "d.jpg", RED, 6)
    (tree / "birds").symlink_to(tmp_path / "elsewhere")
    items = from_folder(tree)
    assert dict(zip(rel(tree, items.paths), items.labels)) == {
        "birds/d.jpg": "birds", "cats/a.jpg": "cats", "cats/b.jpg": "cats", "dogs/c.png": "dogs"}


def test_training_does_not_read_a_class_folder_twice_through_a_loop(tree):
    (tree / "cats" / "loop").symlink_to("..")
    items = from_folder(tree)
    assert rel(tree, items.paths) == ["cats/a.jpg", "cats/b.jpg", "dogs/c.png"]


def test_verify_checks_every_file_training_reads(tree, tmp_path):
    save_image(tmp_path / "elsewhere" / "d.jpg", RED, 6)
    (tree / "birds").symlink_to(tmp_path / "elsewhere")
    (tree / "cats" / "gone.jpg").symlink_to(tree / "nowhere.jpg")
    (tree / "cats" / "loop").symlink_to("..")
    (tree / "dogs" / "e.ppm").write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    training = set(rel(tree, from_folder(tree).paths))
    assert training == {"birds/d.jpg", "cats/a.jpg", "cats/b.jpg", "cats/gone.jpg", "dogs/c.png", "dogs/e.ppm"}
    assert training <= set(find_candidates(tree))


def test_the_walk_imports_no_torch():
    code = ("import sys, pixclass.data.walk; "
            "print(sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"

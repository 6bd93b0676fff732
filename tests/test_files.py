"""`pixclass.files`: atomic writes that honour the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pixclass.files import atomic_write_text, current_umask


def test_an_atomically_written_file_gets_the_permissions_the_umask_allows(tmp_path: Path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_with_the_usual_umask_other_users_can_read_the_file(tmp_path: Path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "b.txt", "x")
        assert current_umask() == 0o022
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


def test_an_atomic_write_leaves_no_temporary_file_behind(tmp_path: Path):
    atomic_write_text(tmp_path / "c.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["c.txt"]
    assert (tmp_path / "c.txt").read_text() == "hello"


def test_the_temporary_files_of_a_killed_write_are_removed_and_nothing_else(tmp_path: Path):
    from pixclass.files import remove_stale_temps

    left = tmp_path / ".model.pixclass.ab12_xyz.tmp"
    left.write_text("half")
    mine = [tmp_path / ".hidden.tmp", tmp_path / "notes.tmp", tmp_path / "model.pixclass"]
    for p in mine:
        p.write_text("keep")
    assert remove_stale_temps(tmp_path) == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in mine)

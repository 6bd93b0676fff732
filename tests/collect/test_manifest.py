"""The download manifest: rows a kill, an editor or a stray file can damage are skipped, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixclass.cli import main
from pixclass.collect.manifest import FIELDS, ManifestRecord, ManifestWriter, read_manifest
from pixclass.errors import PixclassError

HEADER = ",".join(FIELDS) + "\r\n"


def row(url: str, file: str = "", status: str = "ok", label: str = "", size: str = "10") -> str:
    """One line as the writer makes it (columns in FIELDS order)."""
    return f"{url},{file},{'ab' * 32},{size},4,3,{status},,,,,{label}\r\n"


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def urls(path: Path) -> list[str]:
    return [rec.url for rec in read_manifest(path)]


def test_an_old_manifest_without_pending_rows_reads_as_before(tmp_path):
    path = write(tmp_path, HEADER + row("http://h/a.jpg", "a.jpg") + row("http://h/b.jpg", "a.jpg", "duplicate")
                 + "http://h/c.jpg,,,0,0,0,failed,HTTP 404 Not Found,,,,\r\n")
    assert [(r.url, r.status, r.file, r.bytes) for r in read_manifest(path)] == [
        ("http://h/a.jpg", "ok", "a.jpg", 10), ("http://h/b.jpg", "duplicate", "a.jpg", 10),
        ("http://h/c.jpg", "failed", "", 0)]


def test_lines_that_cannot_be_parsed_are_skipped_and_the_rows_around_them_read(tmp_path):
    garbage = [
        "complete nonsense\r\n",
        "\r\n",
        "http://h/few.jpg,few.jpg,ok\r\n",  # too few fields
        row("http://h/many.jpg", "many.jpg").replace("\r\n", ",extra\r\n"),  # too many
        row("http://h/odd.jpg", "odd.jpg", status="downloaded"),  # unknown status
        row("http://h/size.jpg", "size.jpg", size="12kB"),  # not a number
        row("", "nourl.jpg"),  # no URL
        "\x00\x00\x00\x00\r\n",
    ]
    path = write(tmp_path, HEADER + row("http://h/a.jpg", "a.jpg") + "".join(garbage) + row("http://h/b.jpg", "b.jpg"))
    assert urls(path) == ["http://h/a.jpg", "http://h/b.jpg"]


def test_a_line_cut_inside_a_quoted_value_does_not_swallow_the_rows_after_it(tmp_path):
    cut = 'http://h/c.jpg,,,0,0,0,failed,"HTTP 404, Not'  # a kill in the middle of a quoted error
    path = write(tmp_path, HEADER + row("http://h/a.jpg", "a.jpg") + cut + "\n"
                 + row("http://h/b.jpg", "b.jpg") + row("http://h/d.jpg", "d.jpg") + 'x,"y"\r\n')
    assert urls(path) == ["http://h/a.jpg", "http://h/b.jpg", "http://h/d.jpg"]


def test_a_character_cut_by_a_kill_is_skipped_with_its_line(tmp_path):
    cut = row("http://h/ü.jpg", "u.jpg").encode()[:10]  # ends inside the two bytes of "ü"
    path = write(tmp_path, (HEADER + row("http://h/a.jpg", "a.jpg")).encode() + cut + b"\n"
                 + row("http://h/b.jpg", "b.jpg").encode())
    assert urls(path) == ["http://h/a.jpg", "http://h/b.jpg"]


def test_an_unclosed_quote_running_past_the_csv_field_limit_is_skipped(tmp_path):
    path = write(tmp_path, HEADER + '"' + "x" * 300_000 + "\n" + row("http://h/b.jpg", "b.jpg"))
    assert urls(path) == ["http://h/b.jpg"]


def test_a_kept_row_whose_label_a_kill_cut_short_is_skipped(tmp_path):
    whole = row("http://h/a.jpg", "coral snake/a.jpg", label="coral snake")
    cut = row("http://h/b.jpg", "coral snake/b.jpg", label="coral snake")[:-6]  # "...,coral s"
    path = write(tmp_path, HEADER + whole + cut)
    assert urls(path) == ["http://h/a.jpg"]
    with ManifestWriter(path) as writer:  # the next run finishes the cut line and appends below it
        writer.write(ManifestRecord("http://h/c.jpg", status="failed", error="HTTP 404 Not Found"))
    assert urls(path) == ["http://h/a.jpg", "http://h/c.jpg"]


@pytest.mark.parametrize("file", ["../../etc/passwd", "/etc/passwd", "a/b/c.jpg", "..\\x.jpg", "cats/../x.jpg"])
def test_a_row_naming_a_file_outside_the_folder_or_its_class_folder_is_skipped(tmp_path, file):
    kept, twin = row("http://h/a.jpg", file, label="cats"), row("http://h/b.jpg", file, "duplicate")
    path = write(tmp_path, HEADER + kept + twin)
    assert urls(path) == []


def test_columns_in_another_order_are_read_by_name_and_appended_in_that_order(tmp_path):
    columns = list(reversed(FIELDS))
    first = dict(url="http://h/a.jpg", file="a.jpg", status="ok", bytes="10")
    path = write(tmp_path, ",".join(columns) + "\n" + ",".join(first.get(c, "") for c in columns) + "\n")
    with ManifestWriter(path) as writer:
        writer.write(ManifestRecord("http://h/b.jpg", file="b.jpg", bytes=7, status="ok"))
    assert path.read_text().splitlines()[0] == ",".join(columns)
    assert [(r.url, r.file, r.bytes) for r in read_manifest(path)] == [
        ("http://h/a.jpg", "a.jpg", 10), ("http://h/b.jpg", "b.jpg", 7)]


def test_a_manifest_lacking_columns_pixclass_writes_is_read_but_not_appended_to(tmp_path):
    path = write(tmp_path, "url,status,file\nhttp://h/a.jpg,ok,a.jpg\n")
    assert [(r.url, r.file) for r in read_manifest(path)] == [("http://h/a.jpg", "a.jpg")]
    with pytest.raises(PixclassError, match=r"has no sha256, bytes, width, height, error, provider, query, license, "
                                            r"label columns, so pixclass cannot add to it\. Move it away"):
        ManifestWriter(path)
    assert path.read_text() == "url,status,file\nhttp://h/a.jpg,ok,a.jpg\n"


@pytest.mark.parametrize("content", [
    b"name,age\nbob,3\n",  # valid CSV of another kind
    bytes(range(256)) * 8,  # binary
    b'"url,status\n',  # a quote that never closes
])
def test_a_file_that_is_not_a_manifest_is_one_line_error(tmp_path, content):
    path = write(tmp_path, content)
    with pytest.raises(PixclassError) as err:
        read_manifest(path)
    assert str(err.value) == (f"'{path}' is not a pixclass manifest (no url/status columns). "
                              "Move it away or choose another --out folder.")


def test_download_into_a_folder_whose_manifest_is_foreign_is_one_line_and_exit_1(tmp_path, capsys):
    write(tmp_path, bytes(range(256)) * 8)
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a.jpg\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["download", str(tmp_path / "urls.txt"), "--out", str(tmp_path), "--no-progress"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pixclass: ") and "is not a pixclass manifest" in err


@pytest.mark.parametrize("content", ["", "\n\n", "\ufeff" + HEADER])
def test_an_empty_manifest_or_one_with_only_a_header_has_no_rows(tmp_path, content):
    assert read_manifest(write(tmp_path, content)) == []


def test_a_blank_manifest_gets_a_header_before_the_first_row(tmp_path):
    path = write(tmp_path, "\n")
    with ManifestWriter(path) as writer:
        writer.write(ManifestRecord("http://h/a.jpg", status="failed"))
    assert urls(path) == ["http://h/a.jpg"]


def test_line_breaks_inside_values_are_written_as_spaces_so_a_row_is_one_line(tmp_path):
    path = tmp_path / "manifest.csv"
    with ManifestWriter(path) as writer:
        writer.write(ManifestRecord("http://h/a.jpg", status="failed", error="Bad:\nline two\r\nthree"))
    assert len(path.read_text().splitlines()) == 2
    assert read_manifest(path)[0].error == "Bad: line two three"


def test_pending_rows_are_read_with_their_status(tmp_path):
    path = write(tmp_path, HEADER + row("http://h/a.jpg", "a.jpg", "pending") + row("http://h/a.jpg", "a.jpg"))
    assert [r.status for r in read_manifest(path)] == ["pending", "ok"]

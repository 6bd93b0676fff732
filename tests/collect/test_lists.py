"""Reading URL lists and query CSVs: the input formats of download and fetch."""

from __future__ import annotations

import pytest

from pixclass.collect import read_queries, read_url_list
from pixclass.collect.naming import safe_label, safe_stem
from pixclass.errors import PixclassError


def test_a_text_list_skips_blanks_comments_and_repeats(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("# from bing\nhttps://a.example/1.jpg\n\nhttps://a.example/1.jpg\nhttps://a.example/x,y.jpg\n")
    assert [i.url for i in read_url_list(path)] == ["https://a.example/1.jpg", "https://a.example/x,y.jpg"]


def test_a_csv_list_has_url_and_optional_label(tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text("url,label\nhttps://a.example/1.jpg,cat\nhttps://a.example/2.jpg\n")
    assert [(i.url, i.label) for i in read_url_list(path)] == [
        ("https://a.example/1.jpg", "cat"), ("https://a.example/2.jpg", "")]


def test_an_empty_list_is_a_clear_error(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("# nothing yet\n")
    with pytest.raises(PixclassError, match="has no URLs"):
        read_url_list(path)


def test_fastclass_rows_split_terms_on_semicolons(tmp_path):
    path = tmp_path / "snakes.csv"
    path.write_text("coral snake,coral snake;micrurus fulvius\nmilk snake,milk snake\n")
    assert [(c.label, c.queries) for c in read_queries(path)] == [
        ("coral snake", ["coral snake", "micrurus fulvius"]), ("milk snake", ["milk snake"])]


def test_plain_class_query_rows_add_up_and_a_lone_class_is_its_own_query(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("class,query\ncat,tabby cat\ncat,black cat\n# later\ndog\n")
    assert [(c.label, c.queries) for c in read_queries(path)] == [("cat", ["tabby cat", "black cat"]), ("dog", ["dog"])]


def test_a_class_that_cannot_be_a_folder_names_its_line(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("cat,cats\n..,dots\n")
    with pytest.raises(PixclassError, match=r"q.csv' line 2: class name '..' cannot be a folder name"):
        read_queries(path)


@pytest.mark.parametrize("url, stem", [
    ("https://a.example/photos/Tabby%20Cat.JPG?w=300", "Tabby_Cat"),
    ("https://a.example/..%2F..%2Fetc%2Fpasswd", "passwd"),
    ("https://a.example/", "fallback"),
    ("https://a.example/nul.png", "fallback"),
])
def test_file_stems_are_safe(url, stem):
    assert safe_stem(url, fallback="fallback") == stem


def test_labels_keep_spaces_but_lose_separators():
    assert safe_label("coral snake") == "coral snake"
    assert safe_label("a/b\\c") == "a_b_c"


def test_a_single_url_string_is_a_list_of_one():
    assert [i.url for i in read_url_list("https://a.example/1.jpg")] == ["https://a.example/1.jpg"]

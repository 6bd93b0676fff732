"""The cleaner's API in-process (FastAPI's TestClient): decisions change files and cleaned.csv exactly,
undo takes them back, the journal restores everything after a restart, --apply never overwrites."""

from __future__ import annotations

import csv
import json
import time

import pytest
from fastapi.testclient import TestClient

from cleaner_helpers import colour_folders, csv_rows, loose_images
from imagefiles import write_planet
from pixclass.cleaner.app import create_app
from pixclass.cleaner.settings import CleanerSettings
from pixclass.errors import PixclassError
from webapps import WAIT

QUIET = CleanerSettings(find_dupes=False)


@pytest.fixture
def root(tmp_path):
    return colour_folders(tmp_path / "colours")


def _client(path, settings=QUIET) -> TestClient:
    return TestClient(create_app(path, settings))


def _decide(client, item, action, labels=None):
    answer = client.post("/api/decide", json={"item": item, "action": action, "labels": labels})
    assert answer.status_code == 200, answer.text
    return answer.json()["item"]


def test_relabels_are_written_to_cleaned_csv_with_every_remaining_image(root):
    with _client(root) as client:
        _decide(client, "blue/blue_0.jpg", "relabel", ["red"])
        _decide(client, "green/green_2.jpg", "relabel", ["blue"])
        _decide(client, "red/red_1.png", "trash")

    assert csv_rows(root / "cleaned.csv") == [
        "name,label", "blue/blue_0.jpg,red", "blue/blue_1.png,blue", "blue/blue_2.jpg,blue",
        "green/green_0.jpg,green", "green/green_1.png,green", "green/green_2.jpg,blue",
        "red/red_0.jpg,red", "red/red_2.jpg,red"]


def test_a_trashed_image_is_moved_into_the_trash_with_a_manifest_row_not_deleted(root):
    original = (root / "red" / "red_1.png").read_bytes()
    with _client(root) as client:
        item = _decide(client, "red/red_1.png", "trash")

    assert item["status"] == "trashed" and item["location"] == ".pixclass-trash/red/red_1.png"
    assert not (root / "red" / "red_1.png").exists()
    assert (root / ".pixclass-trash" / "red" / "red_1.png").read_bytes() == original
    rows = list(csv.reader((root / ".pixclass-trash" / "manifest.csv").open()))
    assert rows[0] == ["original", "trashed", "time"]
    assert [r[:2] for r in rows[1:]] == [["red/red_1.png", ".pixclass-trash/red/red_1.png"]]


def test_trashing_a_second_file_of_the_same_name_picks_a_free_name_in_the_trash(root):
    (root / ".pixclass-trash" / "red").mkdir(parents=True)
    (root / ".pixclass-trash" / "red" / "red_1.png").write_bytes(b"an earlier one")
    with _client(root) as client:
        item = _decide(client, "red/red_1.png", "trash")

    assert item["location"] == ".pixclass-trash/red/red_1-2.png"
    assert (root / ".pixclass-trash" / "red" / "red_1.png").read_bytes() == b"an earlier one"


def test_undo_takes_back_decisions_one_by_one_and_restores_the_trashed_file(root):
    original = (root / "red" / "red_1.png").read_bytes()
    before = (root / "cleaned.csv").exists()
    with _client(root) as client:
        _decide(client, "blue/blue_0.jpg", "relabel", ["green"])
        _decide(client, "red/red_1.png", "trash")
        first = client.post("/api/undo").json()
        second = client.post("/api/undo").json()
        third = client.post("/api/undo")

    assert before is False
    assert (first["item"]["key"], first["item"]["status"], first["undo"]) == ("red/red_1.png", "", 1)
    assert (second["item"]["key"], second["item"]["labels"], second["undo"]) == ("blue/blue_0.jpg", ["blue"], 0)
    assert (third.status_code, third.json()) == (409, {"error": "nothing to undo"})
    assert (root / "red" / "red_1.png").read_bytes() == original
    assert "blue/blue_0.jpg,blue" in csv_rows(root / "cleaned.csv")


def test_undo_of_a_trash_is_refused_when_another_file_took_the_original_name(root):
    with _client(root) as client:
        _decide(client, "red/red_1.png", "trash")
        (root / "red" / "red_1.png").write_bytes(b"a new file")
        answer = client.post("/api/undo")

    assert answer.status_code == 409
    assert answer.json()["error"].startswith("cannot undo: 'red/red_1.png' exists again")
    assert (root / "red" / "red_1.png").read_bytes() == b"a new file"
    assert (root / ".pixclass-trash" / "red" / "red_1.png").is_file()


def test_a_restarted_cleaner_replays_the_journal_to_the_same_state_and_undo_goes_on(root):
    settings = CleanerSettings(apply=True, find_dupes=False)
    with _client(root, settings) as client:
        _decide(client, "blue/blue_0.jpg", "relabel", ["red"])
        _decide(client, "green/green_1.png", "trash")
        _decide(client, "red/red_0.jpg", "keep")
        _decide(client, "red/red_2.jpg", "relabel", ["green"])
        client.post("/api/undo")
        state = client.get("/api/state").json()

    with _client(root, settings) as client:
        again = client.get("/api/state").json()
        undone = client.post("/api/undo").json()["item"]

    assert again["items"] == state["items"] and again["undo"] == state["undo"] == 3
    assert (undone["key"], undone["status"]) == ("red/red_0.jpg", "")
    assert (root / "red" / "blue_0.jpg").is_file() and not (root / "blue" / "blue_0.jpg").exists()
    journal = [json.loads(line) for line in (root / ".pixclass-clean" / "decisions.jsonl").read_text().splitlines()]
    assert [(e["op"], e.get("action"), e["item"]) for e in journal] == [
        ("decide", "relabel", "blue/blue_0.jpg"), ("decide", "trash", "green/green_1.png"),
        ("decide", "keep", "red/red_0.jpg"), ("decide", "relabel", "red/red_2.jpg"),
        ("undo", None, "red/red_2.jpg"), ("undo", None, "red/red_0.jpg")]


def test_a_line_cut_by_a_crash_is_skipped_and_the_decisions_before_it_stand(root):
    with _client(root) as client:
        _decide(client, "blue/blue_1.png", "relabel", ["red"])
    with (root / ".pixclass-clean" / "decisions.jsonl").open("a") as fh:
        fh.write('{"seq": 2, "op": "decide", "act')
    with _client(root) as client:
        items = {i["key"]: i for i in client.get("/api/state").json()["items"]}
        _decide(client, "blue/blue_2.jpg", "keep")

    assert (items["blue/blue_1.png"]["labels"], items["blue/blue_1.png"]["status"]) == (["red"], "relabelled")


def test_with_apply_a_relabel_moves_the_file_and_never_overwrites_one_of_the_same_name(root):
    (root / "red" / "blue_0.jpg").write_bytes(b"already here")
    moved = (root / "blue" / "blue_0.jpg").read_bytes()
    with _client(root, CleanerSettings(apply=True, find_dupes=False)) as client:
        item = _decide(client, "blue/blue_0.jpg", "relabel", ["red"])
        rows = csv_rows(root / "cleaned.csv")
        disk = (root / "red" / "blue_0-2.jpg").read_bytes(), (root / "red" / "blue_0.jpg").read_bytes()
        back = client.post("/api/undo").json()["item"]

    assert item["location"] == "red/blue_0-2.jpg"
    assert "red/blue_0-2.jpg,red" in rows and "blue/blue_0.jpg,red" not in rows
    assert disk == (moved, b"already here")
    assert back["location"] == "blue/blue_0.jpg"
    assert (root / "blue" / "blue_0.jpg").read_bytes() == moved
    assert (root / "red" / "blue_0.jpg").read_bytes() == b"already here"
    assert not (root / "red" / "blue_0-2.jpg").exists()


def test_with_apply_a_relabel_in_a_train_valid_layout_stays_in_its_split(tmp_path):
    root = tmp_path / "imagenet"
    colour_folders(root / "train", 2)
    colour_folders(root / "valid", 1)
    with _client(root, CleanerSettings(apply=True, find_dupes=False)) as client:
        item = _decide(client, "valid/red/red_0.jpg", "relabel", ["blue"])

    assert (item["split"], item["location"]) == ("valid", "valid/blue/red_0.jpg")
    assert (root / "valid" / "blue" / "red_0.jpg").is_file()


def test_a_cleaned_csv_that_was_there_before_is_never_overwritten(root):
    (root / "cleaned.csv").write_text("someone's own file\n")
    with _client(root) as client:
        _decide(client, "red/red_0.jpg", "keep")
        name = client.get("/api/state").json()["cleaned_csv"]

    assert name == "cleaned-2.csv"
    assert (root / "cleaned.csv").read_text() == "someone's own file\n"
    assert csv_rows(root / "cleaned-2.csv")[1] == "blue/blue_0.jpg,blue"


def test_a_trashed_item_cannot_be_relabelled_until_the_trash_is_undone(root):
    with _client(root) as client:
        _decide(client, "red/red_0.jpg", "trash")
        answer = client.post("/api/decide", json={"item": "red/red_0.jpg", "action": "keep"})
        by_id = client.post("/api/decide", json={"item": 6, "action": "relabel", "labels": ["blue"]})

    assert answer.status_code == 404  # its file is no longer at red/red_0.jpg
    assert (by_id.status_code, by_id.json()) == (
        409, {"error": "'red/red_0.jpg' is in the trash: undo to bring it back first"})


def test_a_second_cleaner_on_the_same_folder_is_refused_by_name(root):
    first = create_app(root, QUIET)
    try:
        with pytest.raises(PixclassError, match="another 'pixclass clean' is cleaning this folder"):
            create_app(root, QUIET)
    finally:
        first.state.cleaner.close()


def test_a_runs_label_issues_give_each_image_its_score_suggestion_and_loss(root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(root)}))
    (run / "label_issues.csv").write_text(
        "path,label,suggested,score,loss,split,issue\n"
        f"{root / 'blue' / 'blue_1.png'},blue,red,0.93,2.5,valid,1\n"
        f"{root / 'red' / 'red_0.jpg'},red,red,0.02,0.1,train,0\n"
        "/elsewhere/x.jpg,red,red,0.5,0.5,train,0\n")
    with _client(run) as client:
        state = client.get("/api/state").json()

    scored = {i["key"]: (i["score"], i["suggested"], i["loss"], i["issue"], i["run_split"])
              for i in state["items"] if "score" in i}
    assert scored == {"blue/blue_1.png": (0.93, "red", 2.5, True, "valid"),
                      "red/red_0.jpg": (0.02, "red", 0.1, False, "train")}
    assert state["label_issues"]["unmatched"] == 1
    assert state["root"] == str(root.resolve())


def test_without_label_issues_the_state_names_the_command_that_makes_them(root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(root)}))
    with _client(run) as client:
        issues = client.get("/api/state").json()["label_issues"]

    assert issues == {"file": None, "command": f"pixclass label-issues {run.resolve()}", "count": 0, "unmatched": 0}


def test_a_multi_label_csv_run_gives_tag_lists_and_relabels_write_space_joined_tags(tmp_path):
    data = write_planet(tmp_path / "planet", 6)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(data / "labels.csv"), "folder": "train-jpg",
                                                 "label_delim": " "}))
    with _client(run, CleanerSettings(apply=True, find_dupes=False)) as client:
        state = client.get("/api/state").json()
        item = _decide(client, "train_3.jpg", "relabel", ["blue", "red"])
        _decide(client, "train_0.jpg", "trash")
        after = client.get("/api/state").json()["items"]
    with _client(run) as client:  # the CSV now names a file that is in the trash
        restarted = client.get("/api/state").json()

    assert (state["layout"], state["multi"], state["apply"], state["classes"]) == (
        "csv", True, False, ["blue", "green", "red"])
    assert [i["labels"] for i in state["items"][:4]] == [["red"], ["green"], ["blue"], ["red", "green"]]
    assert item["location"] == "train_3.jpg"  # a CSV dataset has no class folders: nothing moves
    assert restarted["items"] == after
    assert restarted["notes"] == ["1 rows of labels.csv name files that are not there (trashed or moved away)"]
    assert csv_rows(data / "train-jpg" / "cleaned.csv") == [
        "name,label", "train_1.jpg,green", "train_2.jpg,blue", "train_3.jpg,blue red", "train_4.jpg,green blue",
        "train_5.jpg,red blue"]


def test_sort_mode_files_a_loose_image_into_its_class_folder_under_a_free_name(tmp_path):
    root = loose_images(tmp_path / "inbox", ["a.jpg", "b.jpg"])
    (root / "cat").mkdir()
    (root / "cat" / "a.jpg").write_bytes(b"another a")
    original = (root / "a.jpg").read_bytes()
    with _client(root, CleanerSettings(sort_classes=("cat", "dog"), find_dupes=False)) as client:
        state = client.get("/api/state").json()
        item = _decide(client, "a.jpg", "file", ["cat"])
        not_loose = client.post("/api/decide", json={"item": "cat/a.jpg", "action": "file", "labels": ["dog"]})
        back = client.post("/api/undo").json()["item"]

    assert state["sort"] == {"active": True, "classes": ["cat", "dog"]}
    assert (item["location"], item["status"]) == ("cat/a-2.jpg", "filed")
    assert (not_loose.status_code, not_loose.json()) == (
        400, {"error": "'cat/a.jpg' is not a loose image: relabel it instead"})
    assert (back["location"], back["status"]) == ("a.jpg", "")
    assert (root / "a.jpg").read_bytes() == original and (root / "cat" / "a.jpg").read_bytes() == b"another a"


def test_duplicates_come_from_the_runs_dupes_csv(root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(root)}))
    (run / "dupes.csv").write_text(f"a,b,kind,distance\n{root}/blue/blue_0.jpg,{root}/red/red_1.png,near,3\n"
                                   f"{root}/red/red_1.png,{root}/red/red_2.jpg,exact,0\n")
    with _client(run, CleanerSettings()) as client:
        dupes = client.get("/api/dupes").json()
        ids = {i["key"]: i["id"] for i in client.get("/api/state").json()["items"]}

    assert dupes["status"] == "ready" and dupes["source"] == str(run.resolve() / "dupes.csv")
    assert dupes["groups"] == [{"ids": sorted([ids["blue/blue_0.jpg"], ids["red/red_1.png"], ids["red/red_2.jpg"]]),
                                "distance": 0, "kind": "near"}]


def test_without_dupes_csv_duplicates_are_found_at_start_up(root):
    (root / "green" / "copy.jpg").write_bytes((root / "blue" / "blue_2.jpg").read_bytes())
    with _client(root, CleanerSettings(dupes_workers=1)) as client:
        deadline = time.monotonic() + WAIT
        while (dupes := client.get("/api/dupes").json())["status"] == "finding":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ids = {i["key"]: i["id"] for i in client.get("/api/state").json()["items"]}

    assert dupes["status"] == "ready"
    assert dupes["groups"] == [{"ids": sorted([ids["blue/blue_2.jpg"], ids["green/copy.jpg"]]), "distance": 0,
                                "kind": "exact"}]


def test_loose_images_without_classes_to_sort_into_are_refused_naming_the_option(tmp_path):
    root = loose_images(tmp_path / "inbox", ["a.jpg"])
    with pytest.raises(PixclassError, match=r"holds loose images but no class folders .* --sort CLASS1,CLASS2"):
        create_app(root, QUIET)
    create_app(root, CleanerSettings(sort_classes=("cat",), find_dupes=False)).state.cleaner.close()  # not locked


def test_an_unreadable_label_issues_file_is_one_error_line_and_the_folder_is_released(root, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": str(root)}))
    (run / "label_issues.csv").write_bytes(b"path,score\n\xff\xfe\xfa,1\n")
    with pytest.raises(PixclassError, match=r"cannot read '.*label_issues.csv' \(.*\): make it again with "
                                            r"'pixclass label-issues RUN' or move it away"):
        create_app(run, QUIET)
    create_app(root, QUIET).state.cleaner.close()  # the failed start left no lock behind

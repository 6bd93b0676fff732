"""The collect verbs start fast: no torch; and their flags reach the API."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from collect_helpers import make_image
from pixclass.cli import main


def test_collect_modules_do_not_import_torch():
    code = ("import sys, pixclass.cli.collect, pixclass.collect.download, pixclass.collect.fetch, "
            "pixclass.collect.verify, pixclass.collect.providers.bing, pixclass.collect.providers.flickr; "
            "print(sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_cli_verify_fix_rewrites_and_dry_run_touches_nothing(tmp_path, capsys):
    cmyk = Image.new("CMYK", (30, 20), (0, 255, 255, 0))
    cmyk.save(tmp_path / "cmyk.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "good.jpg").write_bytes(make_image(1))
    with pytest.raises(SystemExit) as exit_info:  # the entry point always exits
        main(["verify", str(tmp_path), "--dry-run", "--no-progress"])
    assert exit_info.value.code == 0
    assert "empty.jpg: zero_bytes (empty file) -> would quarantine" in capsys.readouterr().out
    assert (tmp_path / "empty.jpg").exists()
    with pytest.raises(SystemExit) as exit_info:  # the entry point always exits
        main(["verify", str(tmp_path), "--fix", "--no-progress"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "cmyk.jpg: odd_mode (CMYK) -> fixed (original: .quarantine/cmyk.jpg)" in out
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "RGB"
    assert not (tmp_path / "empty.jpg").exists() and (tmp_path / ".quarantine/empty.jpg").exists()

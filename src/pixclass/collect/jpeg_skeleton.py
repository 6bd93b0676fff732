"""A JPEG's skeleton: every marker segment in order, the entropy-coded data left out.

Why verify can skip decoding the pixels of most JPEGs and still find every file a decoder
rejects. libjpeg (which Pillow uses) fails on a JPEG in two ways only:
1. a bad marker segment: SOF, DHT, DQT, DRI, SOS and the rest are parsed with hard errors;
2. running out of bytes inside entropy-coded data (a truncated file).
Damage *inside* entropy-coded data (a bad Huffman code, a missing restart marker, a scan that
stops at a marker early) only raises warnings: libjpeg fills the rest with zeros, and Pillow
ignores warnings, so the decode "succeeds" for a full decode, fastai's 1/8-scale decode and
our own alike.

So a file is as good as decoded when
- its layout walks cleanly: SOI, length-delimited segments, after each SOS entropy data that
  ends at a marker (byte-stuffed `FF 00` and restart markers are data), and an EOI before the
  file ends (`jpeg_skeleton` reads every byte to find this), and
- libjpeg accepts the skeleton: every segment of the real file, each scan left empty
  (`skeleton_decodes`; an empty scan costs libjpeg nothing but the "premature end of data"
  warning).

Anything else (no EOI, garbage between segments, a stray SOI) is not judged here: the caller
decodes the real file and lets the decoder decide. `tests/collect/test_jpeg_skeleton.py`
checks the claim against Pillow's full-size decode on thousands of damaged JPEGs.
"""

from __future__ import annotations

import io
import re

from PIL import Image

from pixclass.collect.imaging import truncated_images_rejected

# The first byte pair inside entropy-coded data that ends it: FF followed by anything but a
# stuffed zero or a restart marker RST0-7. `FF FF` is fill before a marker, so it ends it too.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x00, 0x01, _SOI, *range(0xD0, 0xD8)}  # codes that have no length field


def jpeg_skeleton(data: bytes) -> bytes | None:
    """The marker segments of `data` with empty scans, ending in EOI; None if the layout is unclean.

    None means "decode the real file to know": a truncated file (no EOI), bytes between
    segments, a segment running past the end, a marker that may not appear where it does,
    or no scan at all.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    end = len(data)
    pos = 2
    parts = [b"\xff\xd8"]
    scans = 0
    while True:
        if pos >= end or data[pos] != 0xFF:
            return None
        while pos < end and data[pos] == 0xFF:  # fill bytes before a marker code
            pos += 1
        if pos >= end:
            return None
        code = data[pos]
        pos += 1
        if code == _EOI:
            return b"".join(parts) + b"\xff\xd9" if scans else None
        if code in _STANDALONE or pos + 2 > end:
            return None
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > end:
            return None
        parts.append(bytes((0xFF, code)) + data[pos : pos + length])
        pos += length
        if code == _SOS:
            scans += 1
            found = _SCAN_END.search(data, pos)
            if found is None:  # the data runs out inside the scan: truncated
                return None
            pos = found.start()


def skeleton_decodes(skeleton: bytes) -> bool:
    """Whether libjpeg (through Pillow) reads every segment of `skeleton` without an error."""
    try:
        with truncated_images_rejected(), Image.open(io.BytesIO(skeleton), formats=["JPEG"]) as im:
            w, h = im.size
            im.draft(im.mode, (max(1, w // 8), max(1, h // 8)))  # the empty scans decode at 1/8
            im.load()
        return True
    except Exception:  # noqa: BLE001 - any failure means "decode the real file to know"
        return False

"""What kind of file is this? Magic-byte sniffing and short descriptions of non-images.

Shared by reading (data) and collecting (collect): the first bytes say what a file is, never
its extension or a server's Content-Type.
"""

from __future__ import annotations


def sniff(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None.

    Args:
        head: at least the first 16 bytes.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    # "BM" alone is too weak: also require a known DIB header size.
    if (head[:2] == b"BM" and len(head) >= 18
            and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124)):
        return "bmp"
    return None


def describe(head: bytes, size: int) -> str:
    """A short human description of non-image bytes, e.g. `HTML page, 2.1 kB`.

    Args:
        head: the first bytes of the content.
        size: the total size in bytes.
    """
    if size == 0:
        return "empty file"
    text = head[:512].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        kind = "HTML page"
    elif text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        kind = "SVG (vector, not supported)"
    elif text.startswith((b"{", b"[")):
        kind = "JSON"
    elif text.startswith(b"<?xml"):
        kind = "XML"
    elif head[4:12] in (b"ftypavif", b"ftypheic", b"ftypheix", b"ftypmif1"):
        kind = "AVIF/HEIC (not supported)"
    elif all(32 <= c < 127 or c in (9, 10, 13) for c in text[:256]):
        kind = "text"
    else:
        kind = "unknown data"
    return f"{kind}, {human_bytes(size)}"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # unreachable

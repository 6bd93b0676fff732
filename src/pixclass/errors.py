"""The one exception type users see: a one-line message saying what, where, why and what next.

Every layer raises `PixclassError` (or a subclass) for bad input; the CLI prints it as
`pixclass: <message>` and exits 1, so users never get a traceback from deep inside torch.
"""

from __future__ import annotations


class PixclassError(Exception):
    """A user-facing error whose message is one line: what went wrong and what to do."""


class Interrupted(PixclassError):
    """The user pressed Ctrl-C; the message says what was kept and how to go on. Exit code 130."""

    exit_code = 130


class ImageReadError(PixclassError):
    """An image file could not be read (corrupt, truncated, not an image, too large)."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot read '{self.path}': {reason}. "
            f"Run 'pixclass verify {_parent(self.path)}' to quarantine unreadable files."
        )


def _parent(path: str) -> str:
    from pathlib import Path

    return str(Path(path).parent) or "."

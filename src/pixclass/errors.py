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
    """An image could not be read (corrupt, truncated, not an image, too large).

    Args:
        path: the file, or what names a source that is not a file (an upload's name, `<bytes>`).
        reason: what is wrong, without a final full stop.
        hint: the next step; by default, for a file, running `pixclass verify` on its folder.
            Sources that are not files (bytes, arrays, uploads) pass their own; `""` gives none.
    """

    def __init__(self, path: object, reason: str, hint: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.hint = (f"Run 'pixclass verify {_parent(self.path)}' to quarantine unreadable files."
                     if hint is None else hint)
        message = f"cannot read '{self.path}': {reason}."
        super().__init__(f"{message} {self.hint}" if self.hint else message)

    def __reduce__(self):  # keep path, reason and hint across processes (pickle)
        return type(self), (self.path, self.reason, self.hint)


def _parent(path: str) -> str:
    from pathlib import Path

    return str(Path(path).parent) or "."

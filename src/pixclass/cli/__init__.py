"""The `pixclass` command: one verb per workflow step, each a thin call into the Python API.

Heavy libraries (torch, timm) are imported inside the commands, never here, so
`pixclass --help` starts fast. Verbs live in sibling modules, each registering its own.

Exit codes: 0 done, 1 a `PixclassError` (one line on stderr), 2 a usage error (click's usage
line and hint), 130 interrupted by Ctrl-C (one line saying what was kept and how to go on).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer

from pixclass.errors import Interrupted, PixclassError

app = typer.Typer(
    name="pixclass",
    help="Collect images, train an image classifier, interpret, export and serve it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The exception base class of the click that typer uses: typer may vendor its own copy
# (`typer._click`), so `import click` would name another class. `typer.BadParameter` is a
# ClickException of that copy.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _register() -> None:
    # Each module adds its commands to `app`; importing them is cheap (no torch).
    from pixclass.cli import clean, collect, core, dupes, interpret, label_issues, predict, serve  # noqa: F401


@contextmanager
def on_interrupt(describe: Callable[[], str]) -> Iterator[None]:
    """Turn Ctrl-C inside the block into `Interrupted(describe())`: what was kept, how to go on."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(describe()) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: exits with the codes in the module docstring."""
    from pixclass.malloc import keep_freed_memory

    keep_freed_memory()  # this process is ours: reuse freed memory (see pixclass.malloc)
    if argv is None:
        sys.unraisablehook = _quiet_interrupts(sys.unraisablehook)
    _register()
    try:
        # typer turns a KeyboardInterrupt it sees into a *returned* 130 (not standalone mode).
        code = app(args=argv, standalone_mode=False)
    except Interrupted as err:
        _exit(Interrupted.exit_code, str(err), own_process=argv is None)
    except PixclassError as err:
        typer.echo(f"pixclass: {err}", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        code = Interrupted.exit_code
    except _ClickException as err:  # usage errors: the usage line, the hint, exit code 2
        err.show()
        sys.exit(err.exit_code)
    if code == Interrupted.exit_code:
        _exit(code, "interrupted", own_process=argv is None)
    _exit(code if isinstance(code, int) else 0, None, own_process=argv is None)


def _quiet_interrupts(hook: Callable[[object], None]) -> Callable[[object], None]:
    """An unraisable hook that drops a Ctrl-C which landed in a finaliser (a weakref callback,
    `__del__`): Python cannot raise it there and would print "Exception ignored ... Traceback".
    The run goes on as if the key came a moment earlier or later; everything else reaches `hook`."""

    def quiet(unraisable: object) -> None:
        if not isinstance(getattr(unraisable, "exc_value", None), KeyboardInterrupt):
            hook(unraisable)

    return quiet


def _exit(code: int, message: str | None, own_process: bool) -> None:
    if own_process:
        # We are leaving: a Ctrl-C while Python shuts down would kill the process by SIGINT
        # (exit code -2 instead of 130 or 0). Callers of `main(argv)` keep their own handler.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if message:
        typer.echo(f"\npixclass: {message}", err=True)
    sys.exit(code)

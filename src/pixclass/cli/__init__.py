"""The `pixclass` command: one verb per workflow step, each a thin call into the Python API.

Heavy libraries (torch, timm) are imported inside the commands, never here, so
`pixclass --help` starts fast. Verbs live in sibling modules, each registering its own.
"""

from __future__ import annotations

import sys

import typer

from pixclass.errors import PixclassError

app = typer.Typer(
    name="pixclass",
    help="Collect images, train an image classifier, interpret, export and serve it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each module adds its commands to `app`; importing them is cheap (no torch).
    from pixclass.cli import collect, core  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: user errors become one line and exit code 1."""
    from pixclass.malloc import keep_freed_memory

    keep_freed_memory()  # this process is ours: reuse freed memory (see pixclass.malloc)
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except PixclassError as err:
        typer.echo(f"pixclass: {err}", err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("pixclass: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("pixclass: interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # click usage errors and the like
        import click

        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise

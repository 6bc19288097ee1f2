"""The `recon` command line: a typer app over the library (no logic lives here).

Each subcommand is one module ``cli/<name>.py`` (installed as ``recon.cli.<name>``) that
defines ``register(app)``; adding a command is one new file and one name below.
"""

from __future__ import annotations

import contextlib
import importlib

import typer

COMMANDS = ["fit", "mesh", "render", "view", "eval", "bench", "info", "normals"]

ROOT_HELP = """Point clouds to surfaces and pictures: fit a field, mesh it, render it, measure it.

Exit codes: 0 success, 1 failure, 2 bad input or usage.
"""


def _version(value: bool) -> None:
    if value:
        from recon import __version__

        typer.echo(f"recon {__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


def make_app() -> typer.Typer:
    """A new ``recon`` app with every built subcommand registered.

    The ``fit`` options come from the fitter registry at this moment, so a test that
    registers a fitter builds its own app with this.
    """
    new = typer.Typer(
        name="recon",
        help=ROOT_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    new.callback()(_root)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"recon.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"recon.cli.{name}":
                continue  # command not built yet
            raise
        module.register(new)
    return new


app = make_app()


def run(argv: list[str] | None = None, *, cli: typer.Typer | None = None) -> int:
    """Run the app on ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Usage errors (an unknown option, a missing argument, a bad value) are printed as one
    line, not click's boxed usage text, and exit 2 like any other bad input. ``cli``
    replaces the app (tests build one with extra fitters registered).
    """
    from recon.errors import Terminated

    try:
        with _sigterm_raises():
            rv = (cli or app)(args=argv, prog_name="recon", standalone_mode=False)
    except KeyboardInterrupt:  # outside a command (while parsing, say): commands report their own
        typer.echo("recon: error: interrupted", err=True)
        return 130
    except Terminated:
        typer.echo("recon: error: terminated (SIGTERM)", err=True)
        return Terminated.exit_code
    except _usage_errors() as exc:  # click's usage errors and ClickException
        code = int(getattr(exc, "exit_code", 2) or 2)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            return 0
        fmt = getattr(exc, "format_message", None)
        message = " ".join((fmt() if fmt else str(exc)).split())
        where = ctx.command_path if ctx is not None else "recon"
        hint = f" (see '{where} --help')" if code == 2 else ""
        typer.echo(f"recon: error: {message}{hint}", err=True)
        return code
    except typer.Abort:
        typer.echo("recon: aborted", err=True)
        return 1
    return rv if isinstance(rv, int) else 0


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM raises :class:`recon.errors.Terminated` during the command (when it would
    otherwise kill the process on the spot), so temporary files are removed and the exit
    is one line and status 143. Only the main thread can install handlers."""
    import signal
    import threading

    from recon.errors import Terminated

    def terminated(signum, frame):
        raise Terminated()

    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _usage_errors() -> tuple[type, ...]:
    # typer >= 0.2x vendors click (its errors derive from TyperException); older typer
    # raises click's own ClickException. Catch whichever this install has.
    kinds: list[type] = []
    try:
        from typer.exceptions import TyperException

        kinds.append(TyperException)
    except ImportError:
        pass
    try:
        import click

        kinds.append(click.ClickException)
    except ImportError:
        pass
    return tuple(kinds)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``recon`` script: exit 0 ok, 1 failure, 2 bad input or usage."""
    raise SystemExit(run(argv))


if __name__ == "__main__":
    main()

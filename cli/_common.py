"""What every subcommand shares: one-line errors with the right exit code."""

from __future__ import annotations

import functools
import sys

import typer


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print ``recon: error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"recon: error: {message}", err=True)
    return typer.Exit(code)


def user_errors(fn):
    """Decorator: a ReconError becomes one line on stderr and exit 2; any other error exit 1.

    Set RECON_DEBUG=1 to see the traceback of an unexpected error.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import os

        from recon.errors import ReconError

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except ReconError as exc:
            raise fail(str(exc), getattr(exc, "exit_code", 2)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except MemoryError:
            raise fail("out of memory: try a lower --resolution", 1) from None
        except Exception as exc:
            if os.environ.get("RECON_DEBUG"):
                raise
            raise fail(f"unexpected {exc.__class__.__name__}: {exc} (set RECON_DEBUG=1 for a traceback)", 1) from None

    return wrapper

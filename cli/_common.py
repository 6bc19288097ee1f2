"""What every subcommand shares: one-line errors with the right exit code, path checks,
JSON output, and the progress display.

Exit codes: 0 success, 2 bad input or usage (a :class:`recon.errors.ReconError`, a
missing or unreadable file, a usage error), 1 any other failure (a bug or the
environment), 130 interrupted (SIGINT), 143 terminated (SIGTERM). Nothing here imports numpy, numba, open3d or trimesh,
so ``recon --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from pathlib import Path

import typer


def keyword_param(name: str, annotation, default):
    """One keyword-only parameter of a command whose signature is built at start-up (recon fit's)."""
    import inspect

    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print ``recon: error: message`` (one line) on stderr and return the Exit to raise."""
    message = " ".join(str(message).split())  # one line, whatever the message held
    typer.echo(f"recon: error: {message}", err=True)
    return typer.Exit(code)


def _os_error_message(exc: OSError) -> str:
    what = exc.strerror or exc.__class__.__name__
    return f"{exc.filename}: {what.lower()}" if exc.filename else what


def user_errors(fn):
    """Decorator: a ReconError becomes one line on stderr and exit 2; any other error exit 1.

    File-system errors about a named file (missing, a folder, no permission) are the
    user's to fix, so they exit 2 as well. Set RECON_DEBUG=1 to see the traceback of an
    unexpected error.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import warnings

        from recon.errors import ReconError, Terminated

        def show(message, category, filename, lineno, file=None, line=None):
            # a warning is one line too: what was changed, not where in the code
            typer.echo(f"recon: warning: {' '.join(str(message).split())}", err=True)

        try:
            with warnings.catch_warnings():
                warnings.showwarning = show
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except ReconError as exc:
            raise fail(str(exc), getattr(exc, "exit_code", 2)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Terminated:
            raise fail("terminated (SIGTERM)", Terminated.exit_code) from None
        except MemoryError:
            raise fail("out of memory: try a lower --resolution or --voxel-size down-sampling", 1) from None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            if os.environ.get("RECON_DEBUG"):
                raise
            raise fail(_os_error_message(exc), 2) from None
        except Exception as exc:
            if os.environ.get("RECON_DEBUG"):
                raise
            raise fail(f"unexpected {exc.__class__.__name__}: {exc} (set RECON_DEBUG=1 for a traceback)", 1) from None

    return wrapper


# ----------------------------------------------------------------------------- paths


def input_file(path: str | os.PathLike, *, what: str = "input") -> Path:
    """Check that ``path`` names a readable file and return it; InputError otherwise."""
    from recon.errors import InputError

    p = Path(path)
    if not p.exists():
        raise InputError(f"no such file: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a folder; the {what} must be a file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: permission denied")
    if not p.is_file():
        raise InputError(f"{p} is {_special_kind(p)}, not a regular file; the {what} must be a file "
                         "(save a stream to a file first)")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty")
    return p


def _special_kind(path: Path) -> str:
    """'a pipe', 'a device', 'a socket' (what a path that is not a regular file is)."""
    import stat

    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file (after resolving links and ``..``)."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def output_file(path: str | os.PathLike, *, inputs=(), suffixes=None, what: str = "output") -> Path:
    """Check an output path before any work is done; return it.

    Refuses a path equal to one of ``inputs``, a folder, a missing parent folder, and
    (when ``suffixes`` is given) an extension not among them. The write itself still
    goes through :func:`recon.io.atomic.atomic_path`, which checks the inputs again.
    """
    from recon.errors import InputError

    p = Path(path)
    for src in inputs:
        if src is not None and same_file(src, p):
            raise InputError(f"refusing to overwrite the input {src}: choose another {what} path")
    if p.is_dir():
        raise InputError(f"{what} path {p} is a folder; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{what} folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what} {p}: the folder {parent} is not writable")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise InputError(
            f"cannot write {what} {p.name!r}: unknown extension {p.suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(suffixes))}"
        )
    return p


def mesh_suffixes() -> set[str] | None:
    """Extensions the mesh writer accepts, or None when recon.io does not list them."""
    try:
        import recon.io as rio
    except ImportError:
        return None
    for name in ("MESH_OUTPUT_EXTENSIONS", "MESH_WRITE_SUFFIXES"):
        value = getattr(rio, name, None)
        if value:
            return {s.lower() if s.startswith(".") else "." + s.lower() for s in value}
    return None


# ----------------------------------------------------------------------------- output


def print_json(obj) -> None:
    """Write ``obj`` as JSON (one document, newline-terminated) on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value):
    # numpy scalars and arrays, paths: without importing numpy here.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    return str(value)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def info(message: str, *, quiet: bool = False) -> None:
    """A line of progress information on stderr (nothing with --quiet)."""
    if not quiet:
        typer.echo(message, err=True)


# ----------------------------------------------------------------------------- progress


class FitProgress:
    """The ``progress(step, total, losses)`` callback the fitters call, shown on stderr.

    On a terminal: a rich bar with the iteration, the loss and the ETA. Not on a
    terminal (a log, CI): one plain line every 10 % of the run. With ``quiet``: nothing.
    Use as a context manager around the fit.
    """

    def __init__(self, description: str = "fitting", *, quiet: bool = False, tty: bool | None = None):
        self.description = description
        self.quiet = quiet
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._progress = None
        self._task = None
        self._next_report = 0.0
        self._t0 = time.perf_counter()
        self._first = None
        self.steps = 0
        self.last_losses: dict[str, float] = {}

    def __enter__(self) -> "FitProgress":
        self._t0 = time.perf_counter()
        if not self.quiet and self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=stderr_console(),
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def __call__(self, step: int, total: int, losses: dict[str, float] | None = None) -> None:
        self.steps = step
        self.last_losses = dict(losses or {})
        if self.quiet:
            return
        loss = self._loss_text(self.last_losses)
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task(self.description, total=total, loss=loss)
            self._progress.update(self._task, completed=step, total=total, loss=loss)
            return
        now = time.perf_counter()
        if self._first is None:
            self._first = (step, now)  # the rate comes from steps, not from the set-up before them
        fraction = step / total if total else 1.0
        if fraction + 1e-9 >= self._next_report or step >= total:
            elapsed = now - self._t0
            first_step, first_time = self._first
            typer.echo(
                f"{self.description}: iteration {step}/{total}  loss {loss}  "
                f"elapsed {elapsed:.1f}s  ETA {self._eta(step, total, now)}",
                err=True,
            )
            self._next_report = math.floor(fraction * 10 + 1e-9) / 10 + 0.1

    def _eta(self, step: int, total: int, now: float) -> str:
        """Seconds left at the rate measured since the first step ('?' before there is a
        rate: one step says nothing of the next million)."""
        first_step, first_time = self._first
        if step >= total:
            return "0.0s"
        if step <= first_step:
            return "?"
        eta = (now - first_time) / (step - first_step) * (total - step)
        return format_seconds(eta)

    @staticmethod
    def _loss_text(losses: dict[str, float]) -> str:
        """``total`` (or ``loss``) when the fitter reports one, else every term by name:
        terms in different units are not summed."""
        if not losses:
            return "-"
        for key in ("total", "loss"):
            if key in losses:
                return f"{float(losses[key]):.4g}"
        return " ".join(f"{name}={float(value):.3g}" for name, value in losses.items())


def format_seconds(seconds: float) -> str:
    """``12.3s``, ``4m05s``, ``3h20m``, ``12d03h``: durations too long for seconds read as such."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"

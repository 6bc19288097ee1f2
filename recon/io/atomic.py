"""Atomic output: write to a temporary file beside the target, then rename over it.

The temporary file cannot outlive the process on an exception, SIGINT or SIGTERM: its
name is chosen (and so known to the cleanup) before the file is created, the creation
happens inside the ``try`` that removes it, and while the temporary file exists a SIGTERM
that would kill the process outright is turned into an exception, so the cleanup runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from pathlib import Path


from recon.errors import Terminated


def raise_terminated(signum, frame):
    """A SIGTERM handler: raise :class:`recon.errors.Terminated` in the main thread."""
    raise Terminated()


@contextlib.contextmanager
def atomic_path(path, *, inputs=()):
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    An interrupted or failed write leaves no partial file and the old ``path`` (if any)
    untouched. ``inputs`` are paths the caller read from: writing over one of them is
    refused, so an input is never lost.
    """
    from recon.errors import InputError

    path = Path(path)
    for src in inputs:
        try:
            if Path(src).resolve() == path.resolve():
                raise InputError(f"refusing to overwrite the input {src}: choose another output path")
        except OSError:
            pass
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"output folder does not exist: {parent}")
    with _sigterm_raises():
        tmp = None
        try:
            for _ in range(100):
                # the name is known to the cleanup before the file exists under it
                tmp = parent / f".{path.name}.{secrets.token_hex(8)}.part{path.suffix}"
                if _create_exclusive(tmp, path):
                    break
                tmp = None
            else:
                raise InputError(f"cannot write {path}: no free temporary name in {parent}")
            yield tmp
            with _signals_held():
                _set_output_mode(tmp, path)
                os.replace(tmp, path)
                tmp = None
        finally:
            if tmp is not None:
                with _signals_held(), contextlib.suppress(OSError):
                    os.unlink(tmp)


def _create_exclusive(tmp: Path, path: Path) -> bool:
    """Create the private empty file ``tmp``; False when the name is taken already."""
    from recon.errors import InputError

    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:  # a read-only or special folder: name the output, not the temporary file
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    return True


def _set_output_mode(tmp: Path, path: Path) -> None:
    # the temporary file is private (0600); the output gets the permissions any new file
    # would (0666 less the umask), or keeps those of the file it replaces
    if path.exists():
        mode = path.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


@contextlib.contextmanager
def _sigterm_raises():
    """While inside, SIGTERM raises :class:`recon.errors.Terminated` when it would otherwise kill the
    process on the spot (its default action), so that the cleanup of a temporary file runs.
    Only the main thread can install handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, AttributeError):
        previous = None
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM (they are delivered on leaving) so that a rename or a cleanup
    is not cut in half by a second signal."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = mask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)

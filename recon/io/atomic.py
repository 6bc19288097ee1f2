"""Atomic output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, *, inputs=()):
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    An interrupted or failed write leaves no partial file. ``inputs`` are paths the
    caller read from: writing over one of them is refused, so an input is never lost.
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
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=parent)
    except OSError as exc:  # a read-only or special folder: name the output, not the temporary file
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); the output gets the permissions any new
        # file would (0666 less the umask), or keeps those of the file it replaces
        if path.exists():
            mode = path.stat().st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

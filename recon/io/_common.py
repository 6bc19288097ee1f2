"""Helpers every reader and writer shares: opening a path with one-line errors, the
extension, writing by extension."""

from __future__ import annotations

import os
from pathlib import Path

from recon.errors import InputError


def extension(path) -> str:
    """The file's extension, lower-cased, with its dot ('' when there is none).

    Dispatch is on this alone, never on substrings of the name.
    """
    return Path(path).suffix.lower()


def check_readable(path) -> Path:
    """Return ``path`` as a Path after checking it is an existing, readable regular file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    if not path.is_file():  # reading a pipe or a device would block or never end
        raise InputError(f"{path} is not a regular file (a pipe, device or socket); "
                         "recon reads files (save a stream to a file first)")
    return path


def read_bytes(path) -> bytes:
    """The whole file as bytes, with missing / directory / permission errors as InputError."""
    path = check_readable(path)
    try:
        return path.read_bytes()
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def one_line(exc: BaseException) -> str:
    """An exception as ``ClassName: message`` squeezed onto one line."""
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


NUMPY_SIGNATURES = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")
"First bytes of a .npy file, and of a .npz (zip) archive with and without members."


def load_numpy(path):
    """``np.load(path, allow_pickle=False)`` (an array, or an NpzFile to close) with one-line
    InputErrors. The first bytes are checked first: NumPy takes any file that is neither
    .npy nor .npz for a pickle, and would call a text file "pickled data"."""
    import numpy as np

    path = check_readable(path)
    with open(path, "rb") as fh:
        head = fh.read(len(NUMPY_SIGNATURES[0]))
    if not head:
        raise InputError(f"{path}: the file is empty")
    if not head.startswith(NUMPY_SIGNATURES):
        raise InputError(f"{path}: not a NumPy file (it starts with neither the .npy nor the .npz signature)")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise numpy_error(path, exc) from None


def numpy_error(path, exc: BaseException) -> InputError:
    """The InputError for an exception raised while loading or reading a NumPy file."""
    if isinstance(exc, InputError):
        return exc
    if isinstance(exc, ValueError) and "pickle" in str(exc).lower():
        return InputError(f"{path}: holds pickled Python objects; recon loads plain numeric arrays "
                          "only (allow_pickle=False)")
    return InputError(f"{path}: not a readable NumPy file ({one_line(exc)})")


def write_by_extension(obj, path, writers: dict, *, what: str, extensions, inputs=()) -> Path:
    """Encode ``obj`` with the writer ``writers`` names for ``path``'s extension and write it
    atomically (refusing to overwrite any of ``inputs``); an unknown extension is an
    InputError naming ``what`` ("point cloud output", "mesh") and the ``extensions`` known."""
    from recon.io.atomic import atomic_path

    path = Path(path)
    ext = extension(path)
    if ext not in writers:
        raise InputError(f"{path}: unknown {what} format {ext or '(no extension)'!r}; "
                         f"write one of {', '.join(extensions)}")
    payload = writers[ext](obj)
    with atomic_path(path, inputs=inputs) as tmp:
        tmp.write_bytes(payload)
    return path

"""Plain-text point lists: .xyz, .xyzn, .txt and .pts.

What is accepted (one point per line; values separated by spaces, tabs or commas):

- Lines starting with ``#`` are comments and skipped. A first line holding any word that
  is not a number (``x y z nx ny nz``, ``X,Y,Z``) is taken as a header and skipped.
- ``.xyz`` / ``.txt``: 3 columns ``x y z``; 4 ``x y z intensity``; 6 ``x y z nx ny nz``,
  except that 6 columns whose last three are all whole numbers in 0..255 (and not all
  0 or 1) are read as ``x y z r g b``; 9 ``x y z nx ny nz r g b``.
- ``.xyzn``: 3, 6 (always ``x y z nx ny nz``) or 9 columns as above.
- ``.pts`` (Leica convention): an optional first line holding the point count, then
  3 ``x y z``; 4 ``x y z intensity``; 6 ``x y z r g b``; 7 ``x y z intensity r g b``.

Colours given as floats in [0, 1] are scaled to 0..255.
"""

from __future__ import annotations

import io
import re

import numpy as np

from recon.errors import InputError

_ACCEPTED = {
    ".xyz": "3 (x y z), 4 (+ intensity), 6 (+ nx ny nz, or r g b as whole numbers 0-255) or 9 (+ nx ny nz r g b)",
    ".txt": "3 (x y z), 4 (+ intensity), 6 (+ nx ny nz, or r g b as whole numbers 0-255) or 9 (+ nx ny nz r g b)",
    ".xyzn": "3 (x y z), 6 (+ nx ny nz) or 9 (+ nx ny nz r g b)",
    ".pts": "3 (x y z), 4 (+ intensity), 6 (+ r g b) or 7 (+ intensity r g b)",
}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)$", re.IGNORECASE)


def read_text_points(path, data: bytes, ext: str) -> dict:
    """Parse a text point list. Returns a dict with points, normals, colors, extra."""
    # Work on bytes: a StringIO of a large text costs more than parsing it.
    if b"," in data:
        data = data.replace(b",", b" ")
    data = _drop_first_line_if(data, lambda words: not all(_NUMBER.match(w) for w in words))
    if ext == ".pts":
        data = _drop_first_line_if(data, lambda words: len(words) == 1 and words[0].isdigit())
    try:
        with _no_empty_warning():
            table = np.loadtxt(io.BytesIO(data), dtype=np.float64, comments="#", ndmin=2, encoding="latin-1")
    except ValueError as exc:
        msg = str(exc).split(";")[0].strip()
        raise InputError(f"{path}: malformed text point list: {msg}") from None
    if table.size == 0:
        raise InputError(f"{path}: no points (the file holds no data lines)")
    return _columns(path, table, ext)


def _drop_first_line_if(data: bytes, test) -> bytes:
    """Remove the first non-blank, non-comment line when ``test(words)`` holds."""
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl
        words = data[pos:end].decode("latin-1").split()
        if words and not words[0].startswith("#"):
            return data[:pos] + data[end:] if test(words) else data
        pos = end + 1
    return data


class _no_empty_warning:
    """np.loadtxt warns on an empty input; we raise our own error instead."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.filterwarnings("ignore", message=".*(input contained no data|[Ee]mpty input file).*")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _columns(path, table: np.ndarray, ext: str) -> dict:
    ncol = table.shape[1]
    xyz = table[:, :3]
    out = {"points": xyz, "normals": None, "colors": None, "extra": {}}
    if ext == ".pts":
        if ncol == 4:
            out["extra"]["intensity"] = table[:, 3].astype(np.float32)
        elif ncol == 6:
            out["colors"] = colors_to_u8(table[:, 3:6], text=True)
        elif ncol == 7:
            out["extra"]["intensity"] = table[:, 3].astype(np.float32)
            out["colors"] = colors_to_u8(table[:, 4:7], text=True)
        elif ncol != 3:
            raise _bad_columns(path, ncol, ext)
        return out
    if ncol == 3:
        return out
    if ncol == 4 and ext != ".xyzn":
        out["extra"]["intensity"] = table[:, 3].astype(np.float32)
    elif ncol == 6:
        rest = table[:, 3:6]
        if ext != ".xyzn" and _looks_like_rgb(rest):
            out["colors"] = rest.astype(np.uint8)
        else:
            out["normals"] = rest
    elif ncol == 9:
        out["normals"] = table[:, 3:6]
        out["colors"] = colors_to_u8(table[:, 6:9], text=True)
    else:
        raise _bad_columns(path, ncol, ext)
    return out


def _bad_columns(path, ncol: int, ext: str) -> InputError:
    return InputError(f"{path}: {ncol} columns per line; {ext} accepts {_ACCEPTED[ext]}")


def _looks_like_rgb(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values).all(axis=1)]
    if len(finite) == 0:
        return False
    return bool(
        np.all(finite == np.round(finite)) and finite.min() >= 0 and finite.max() <= 255 and finite.max() > 1
    )


def colors_to_u8(values: np.ndarray, *, text: bool = False) -> np.ndarray:
    """(N, 3) colours -> (N, 3) uint8.

    Integer types: kept, or divided by 257 when any value is above 255 (16-bit colour).
    Floats: scaled by 255 when all lie within [0, 1], else treated like integers. With
    ``text=True`` (values parsed from text, where 0 and 1 may be integer levels) floats in
    [0, 1] are scaled only when some value is fractional.
    """
    v = np.asarray(values)
    if v.dtype == np.uint8:
        return v
    is_float = np.issubdtype(v.dtype, np.floating)
    v = v.astype(np.float64)
    finite = v[np.isfinite(v)]
    top = float(finite.max()) if finite.size else 0.0
    if is_float and top <= 1.0 and not (text and bool(np.all(finite == np.round(finite)))):
        v = v * 255.0
    elif top > 255.0:
        v = v / 257.0
    return np.clip(np.nan_to_num(np.round(v)), 0, 255).astype(np.uint8)


def text_table(points, normals=None, colors=None) -> tuple[np.ndarray, str]:
    """The (N, C) table and printf format a text writer uses (x y z [nx ny nz] [r g b])."""
    cols, fmts = [np.asarray(points, np.float64)], ["%.17g"] * 3
    if normals is not None:
        cols.append(np.asarray(normals, np.float64))
        fmts += ["%.9g"] * 3
    if colors is not None:
        cols.append(np.asarray(colors, np.float64))
        fmts += ["%d"] * 3
    return np.hstack(cols), " ".join(fmts)

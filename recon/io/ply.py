"""PLY: a small header parser, a NumPy body reader, and a binary writer.

Reads ascii, binary_little_endian and binary_big_endian files with any elements and
properties, including ``list`` properties (faces). Binary bodies are read with
``np.frombuffer`` on a structured dtype built from the header, so a million points load
in milliseconds; ascii bodies are parsed in one ``np.fromstring`` call. Lists of one
fixed length (all triangles, say) are read vectorised too; mixed lengths (triangles and
quads) fall back to a loop over rows.

Errors name the file and say what is wrong: a corrupt header (which line), or a truncated
body (which element, how many bytes or values are missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.errors import InputError

# PLY scalar type names (both spellings the spec allows) -> NumPy type codes.
PLY_TYPES = {
    "char": "i1", "int8": "i1",
    "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4",
    "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}
_NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int",
                 "u4": "uint", "f4": "float", "f8": "double"}
PLY_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")


@dataclass
class PlyProperty:
    name: str
    type: str                       # NumPy code of the value (or of list items), e.g. "f4"
    count_type: str | None = None   # NumPy code of a list's length; None for a scalar

    @property
    def is_list(self) -> bool:
        return self.count_type is not None


@dataclass
class PlyElement:
    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)

    @property
    def has_lists(self) -> bool:
        return any(p.is_list for p in self.properties)

    def property(self, name: str) -> PlyProperty | None:
        for p in self.properties:
            if p.name == name:
                return p
        return None


@dataclass
class PlyHeader:
    format: str
    elements: list[PlyElement]
    comments: list[str]
    body_offset: int   # byte offset of the first body byte

    def element(self, name: str) -> PlyElement | None:
        for el in self.elements:
            if el.name == name:
                return el
        return None

    @property
    def endian(self) -> str:
        return ">" if self.format == "binary_big_endian" else "<"


def _header_error(path, detail: str) -> InputError:
    return InputError(f"{path}: corrupt PLY header: {detail}")


def parse_header(data: bytes, path) -> PlyHeader:
    """Parse the header at the start of ``data`` (the file's bytes)."""
    if not data.startswith(b"ply"):
        raise _header_error(path, "the file does not start with 'ply'")
    end = data.find(b"\nend_header")
    end = end + 1 if end >= 0 else data.find(b"\rend_header") + 1
    if end <= 0:
        raise _header_error(path, "no 'end_header' line")
    body = end + len(b"end_header")
    while data[body:body + 1] in (b" ", b"\t"):
        body += 1
    if data[body:body + 2] == b"\r\n":
        body += 2
    elif data[body:body + 1] in (b"\n", b"\r"):
        body += 1
    elif body < len(data):
        raise _header_error(path, "'end_header' is not followed by a line break")
    text = data[:end].decode("latin-1")  # comments may hold any bytes; keywords are ASCII

    fmt = None
    elements: list[PlyElement] = []
    comments: list[str] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[0].strip() != "ply":
        raise _header_error(path, f"line 1 must be 'ply', got {lines[0].strip()[:40]!r}")
    for lineno, raw in enumerate(lines[1:], start=2):
        words = raw.split()
        if not words:
            continue
        key = words[0]
        if key in ("comment", "obj_info"):
            comments.append(raw.strip()[len(key):].strip())
        elif key == "format":
            if len(words) != 3 or words[1] not in PLY_FORMATS:
                raise _header_error(path, f"line {lineno}: unknown format {' '.join(words[1:])!r} "
                                          f"(expected one of {', '.join(PLY_FORMATS)} and a version)")
            fmt = words[1]
        elif key == "element":
            if len(words) != 3:
                raise _header_error(path, f"line {lineno}: expected 'element <name> <count>', got {raw.strip()!r}")
            try:
                count = int(words[2])
            except ValueError:
                count = -1
            if count < 0:
                raise _header_error(path, f"line {lineno}: element {words[1]!r} has a bad count {words[2]!r}")
            elements.append(PlyElement(words[1], count))
        elif key == "property":
            if not elements:
                raise _header_error(path, f"line {lineno}: a property comes before any element")
            el = elements[-1]
            if len(words) == 3 and words[1] != "list":
                typ, name, ctype = words[1], words[2], None
            elif len(words) == 5 and words[1] == "list":
                ctype, typ, name = words[2], words[3], words[4]
                if ctype not in PLY_TYPES or PLY_TYPES[ctype][0] == "f":
                    raise _header_error(path, f"line {lineno}: bad list count type {ctype!r}")
                ctype = PLY_TYPES[ctype]
            else:
                raise _header_error(path, f"line {lineno}: cannot parse {raw.strip()!r}")
            if typ not in PLY_TYPES:
                raise _header_error(path, f"line {lineno}: unknown property type {typ!r}")
            if el.property(name) is not None:
                raise _header_error(path, f"line {lineno}: property {name!r} appears twice in element {el.name!r}")
            el.properties.append(PlyProperty(name, PLY_TYPES[typ], ctype))
        else:
            raise _header_error(path, f"line {lineno}: unexpected {raw.strip()[:60]!r}")
    if fmt is None:
        raise _header_error(path, "no 'format' line")
    return PlyHeader(fmt, elements, comments, body)


def read_ply(path, data: bytes | None = None, *, elements=None) -> tuple[PlyHeader, dict]:
    """Read a PLY file.

    Returns ``(header, body)`` where ``body[element_name][property_name]`` is an array:
    a scalar property is ``(count,)`` of its declared dtype; a list property is
    ``(count, k)`` when every row has ``k`` items, else a list of 1-D arrays.

    elements : names of the elements wanted, or None for all. Reading stops after the
               last one wanted, so a truncated face block does not stop reading vertices.
    """
    from recon.io._common import read_bytes

    path = Path(path)
    if data is None:
        data = read_bytes(path)
    header = parse_header(data, path)
    wanted = None if elements is None else set(elements)
    last = -1
    for i, el in enumerate(header.elements):
        if wanted is None or el.name in wanted:
            last = i
    out: dict[str, dict] = {}
    if header.format == "ascii":
        try:
            _read_ascii(path, data, header, last, out)
        except _AsciiRange as exc:
            raise InputError(f"{path}: corrupt ascii PLY body: a value does not fit its integer "
                             f"property type ({_NUMPY_TO_PLY[str(exc)]})") from None
    else:
        _read_binary(path, data, header, last, out)
    if wanted is not None:
        out = {k: v for k, v in out.items() if k in wanted}
    return header, out


def _truncated(path, el: PlyElement, detail: str) -> InputError:
    return InputError(f"{path}: truncated PLY body: element {el.name!r} ({el.count} rows) {detail}")


def _read_binary(path, data: bytes, header: PlyHeader, last: int, out: dict) -> None:
    e = header.endian
    pos = header.body_offset
    for el in header.elements[: last + 1]:
        if not el.has_lists:
            dt = np.dtype([(p.name, e + p.type) for p in el.properties])
            need = el.count * dt.itemsize
            if pos + need > len(data):
                raise _truncated(path, el, f"needs {need} bytes, the file has {max(len(data) - pos, 0)} left")
            arr = np.frombuffer(data, dtype=dt, count=el.count, offset=pos) if el.count else np.zeros(0, dt)
            pos += need
            out[el.name] = {p.name: arr[p.name].astype(p.type) for p in el.properties}
        else:
            values, pos = _read_binary_lists(path, data, el, e, pos)
            out[el.name] = values


def _read_binary_lists(path, data: bytes, el: PlyElement, e: str, pos: int):
    """Read an element with list properties; vectorised when every list has one length."""
    if el.count == 0:
        return {p.name: (np.zeros((0, 0), p.type) if p.is_list else np.zeros(0, p.type))
                for p in el.properties}, pos
    least = sum(np.dtype(p.count_type if p.is_list else p.type).itemsize for p in el.properties)
    if pos + el.count * least > len(data):  # every row holds its scalars and list lengths at least
        raise _truncated(path, el, f"needs at least {el.count * least} bytes, the file has {max(len(data) - pos, 0)} left")
    # Lengths of the first row's lists fix a candidate record layout.
    fields, cursor = [], pos
    for p in el.properties:
        if p.is_list:
            csize = np.dtype(p.count_type).itemsize
            if cursor + csize > len(data):
                raise _truncated(path, el, "ends inside its first row")
            k = int(np.frombuffer(data, e + p.count_type, 1, cursor)[0])
            if k < 0:
                raise InputError(f"{path}: corrupt PLY body: element {el.name!r} has a list length {k}")
            fields += [(p.name + "\0count", e + p.count_type), (p.name, e + p.type, (k,))]
            cursor += csize + k * np.dtype(p.type).itemsize
        else:
            fields.append((p.name, e + p.type))
            cursor += np.dtype(p.type).itemsize
    dt = np.dtype(fields)
    if pos + el.count * dt.itemsize <= len(data):
        arr = np.frombuffer(data, dtype=dt, count=el.count, offset=pos)
        uniform = all(
            np.all(arr[p.name + "\0count"] == arr[p.name].shape[1]) for p in el.properties if p.is_list
        )
        if uniform:
            values = {p.name: arr[p.name].astype(p.type) for p in el.properties}
            return values, pos + el.count * dt.itemsize
    # Mixed list lengths (or a truncated block): walk row by row.
    cols: dict[str, list] = {p.name: [] for p in el.properties}
    n = len(data)
    for row in range(el.count):
        for p in el.properties:
            if p.is_list:
                csize = np.dtype(p.count_type).itemsize
                if pos + csize > n:
                    raise _truncated(path, el, f"ends at row {row}")
                k = int(np.frombuffer(data, e + p.count_type, 1, pos)[0])
                if k < 0:
                    raise InputError(f"{path}: corrupt PLY body: element {el.name!r} row {row} has a list length {k}")
                pos += csize
                isize = np.dtype(p.type).itemsize
                if pos + k * isize > n:
                    raise _truncated(path, el, f"ends at row {row}")
                cols[p.name].append(np.frombuffer(data, e + p.type, k, pos).astype(p.type))
                pos += k * isize
            else:
                size = np.dtype(p.type).itemsize
                if pos + size > n:
                    raise _truncated(path, el, f"ends at row {row}")
                cols[p.name].append(np.frombuffer(data, e + p.type, 1, pos)[0])
                pos += size
    values = {p.name: (cols[p.name] if p.is_list else np.asarray(cols[p.name], dtype=p.type))
              for p in el.properties}
    return values, pos


def _read_ascii(path, data: bytes, header: PlyHeader, last: int, out: dict) -> None:
    body = data[header.body_offset:]
    text = body.decode("ascii", errors="replace")
    try:
        nums = np.fromstring(text, dtype=np.float64, sep=" ") if text.strip() else np.zeros(0)
    except ValueError:
        bad = _first_non_number(text)
        raise InputError(f"{path}: corrupt ascii PLY body: {bad!r} is not a number") from None
    # An ascii PLY holds one element row per line: every row's value count is checked
    # against the header, so a row with a value too many never shifts the rows after it.
    per_line = _values_per_line(body)
    pos, line = 0, 0
    for el in header.elements[: last + 1]:
        if not el.has_lists:
            width = len(el.properties)
            need = el.count * width
            if pos + need > len(nums):
                raise _truncated(path, el, f"needs {el.count} x {width} values, the body has "
                                           f"{max(len(nums) - pos, 0)} left")
            _check_rows(path, el, per_line[line:line + el.count], np.full(el.count, width))
            block = nums[pos:pos + need].reshape(el.count, width)
            pos += need
            line += el.count
            out[el.name] = {p.name: _cast(block[:, j], p.type) for j, p in enumerate(el.properties)}
        else:
            out[el.name], pos, widths = _read_ascii_lists(path, nums, el, pos)
            _check_rows(path, el, per_line[line:line + el.count], widths)
            line += el.count
    if last == len(header.elements) - 1 and line < len(per_line):
        raise InputError(f"{path}: corrupt ascii PLY body: {len(per_line) - line} more row(s) than the "
                         "header's element counts declare")


def _values_per_line(body: bytes) -> np.ndarray:
    """(R,) int64: how many whitespace-separated values each non-blank line of ``body`` holds."""
    b = np.frombuffer(body, np.uint8)
    if not len(b):
        return np.zeros(0, np.int64)
    breaks = (b == 10) | (b == 13)
    space = breaks | (b == 32) | (b == 9) | (b == 11) | (b == 12)
    starts = ~space
    starts[1:] &= space[:-1]
    line_of_value = np.searchsorted(np.flatnonzero(breaks), np.flatnonzero(starts))
    counts = np.bincount(line_of_value)
    return counts[counts > 0]


def _check_rows(path, el: PlyElement, have: np.ndarray, want: np.ndarray) -> None:
    """Refuse the element when a row's value count differs from what the header makes of it."""
    if len(have) < len(want):  # the values are all there, so some row holds too many
        have = np.concatenate([have, np.zeros(len(want) - len(have), have.dtype)])
    bad = np.flatnonzero(have != want)
    if len(bad):
        r = int(bad[0])
        raise InputError(f"{path}: corrupt ascii PLY body: element {el.name!r} row {r} holds {int(have[r])} "
                         f"values, the header declares {int(want[r])} (on {len(bad)} row(s) in all)")


def _read_ascii_lists(path, nums: np.ndarray, el: PlyElement, pos: int):
    """(values by property, position after the element, (count,) values in each row)."""
    if el.count == 0:
        return {p.name: (np.zeros((0, 0), p.type) if p.is_list else np.zeros(0, p.type))
                for p in el.properties}, pos, np.zeros(0, np.int64)
    if pos + el.count * len(el.properties) > len(nums):  # every row holds a value per property at least
        raise _truncated(path, el, f"needs at least {el.count} x {len(el.properties)} values, the body has "
                                   f"{max(len(nums) - pos, 0)} left")
    # Candidate fixed layout from the first row.
    width, cursor, layout = 0, pos, []
    for p in el.properties:
        if cursor >= len(nums):
            raise _truncated(path, el, "ends inside its first row")
        if p.is_list:
            k = _list_length(path, el, nums[cursor])
            layout.append((p, width, k))
            width += 1 + k
            cursor += 1 + k
        else:
            layout.append((p, width, 0))
            width += 1
            cursor += 1
    need = el.count * width
    if pos + need <= len(nums):
        block = nums[pos:pos + need].reshape(el.count, width)
        if all(np.all(block[:, off] == k) for p, off, k in layout if p.is_list):
            values = {}
            for p, off, k in layout:
                values[p.name] = _cast(block[:, off + 1:off + 1 + k], p.type) if p.is_list else _cast(block[:, off], p.type)
            return values, pos + need, np.full(el.count, width)
    cols: dict[str, list] = {p.name: [] for p in el.properties}
    widths = np.zeros(el.count, np.int64)
    n = len(nums)
    for row in range(el.count):
        row_start = pos
        for p in el.properties:
            if pos >= n:
                raise _truncated(path, el, f"ends at row {row}")
            if p.is_list:
                k = _list_length(path, el, nums[pos])
                if pos + 1 + k > n:
                    raise _truncated(path, el, f"ends at row {row}")
                cols[p.name].append(_cast(nums[pos + 1:pos + 1 + k], p.type))
                pos += 1 + k
            else:
                cols[p.name].append(nums[pos])
                pos += 1
        widths[row] = pos - row_start
    values = {p.name: (cols[p.name] if p.is_list else _cast(np.asarray(cols[p.name]), p.type))
              for p in el.properties}
    return values, pos, widths


def _list_length(path, el: PlyElement, value: float) -> int:
    """A list's item count as read from an ascii body: a whole number >= 0."""
    if not (np.isfinite(value) and value >= 0 and value == int(value)):
        raise InputError(f"{path}: corrupt ascii PLY body: element {el.name!r} has a list length {float(value)!r}")
    return int(value)


def _cast(values: np.ndarray, code: str) -> np.ndarray:
    """Parsed ascii values as the property's type; an integer property's values must fit it."""
    if code[0] == "f":
        with np.errstate(over="ignore"):  # a double beyond float32's range becomes inf, and is dropped later
            return np.ascontiguousarray(values, dtype=code)
    info = np.iinfo(code)
    rounded = np.rint(values)
    if rounded.size and not (np.all(np.isfinite(rounded)) and rounded.min() >= info.min and rounded.max() <= info.max):
        raise _AsciiRange(code)
    return np.ascontiguousarray(rounded).astype(code)


class _AsciiRange(ValueError):
    """An ascii value outside its integer property's range (turned into an InputError)."""


def _first_non_number(text: str) -> str:
    for token in text.split():
        try:
            float(token)
        except ValueError:
            return token[:40]
    return "?"


def faces_from_lists(path, lists, n_vertices: int) -> np.ndarray:
    """(F, 3) int64 triangles from a face list property; polygons are fanned.

    lists : (F, k) array (all polygons with k corners) or a list of 1-D arrays.
    """
    if isinstance(lists, np.ndarray):
        if lists.size == 0:
            return np.zeros((0, 3), np.int64)
        polys = [lists.astype(np.int64)]
    else:
        by_len: dict[int, list] = {}
        for poly in lists:
            by_len.setdefault(len(poly), []).append(poly)
        polys = [np.asarray(v, dtype=np.int64) for v in by_len.values()]
    tris = []
    for block in polys:
        k = block.shape[1] if block.ndim == 2 else 0
        if k < 3:
            continue  # points and edges carry no surface
        for j in range(1, k - 1):
            tris.append(block[:, [0, j, j + 1]])
    faces = np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)
    if len(faces) and (faces.min() < 0 or faces.max() >= n_vertices):
        bad = int(faces.max() if faces.max() >= n_vertices else faces.min())
        raise InputError(f"{path}: a face refers to vertex {bad}, but the file has {n_vertices} vertices")
    return faces


def ply_bytes(columns: list[tuple[str, np.ndarray]], *, faces: np.ndarray | None = None,
              comments=()) -> bytes:
    """A binary little-endian PLY: a vertex element from ``columns``, optional triangles.

    columns : (name, (N,) array) pairs; each array's dtype must be a PLY type.
    faces   : (F, 3) integer vertex indices, written as ``list uchar int vertex_indices``.
    """
    n = len(columns[0][1]) if columns else 0
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {n}")
    dt = []
    for name, arr in columns:
        code = np.dtype(arr.dtype).str[1:]
        if code not in _NUMPY_TO_PLY:
            raise TypeError(f"column {name!r}: dtype {arr.dtype} has no PLY type")
        lines.append(f"property {_NUMPY_TO_PLY[code]} {name}")
        dt.append((name, "<" + code))
    if faces is not None:
        lines += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    lines.append("end_header")
    head = ("\n".join(lines) + "\n").encode("ascii")
    rec = np.empty(n, dtype=dt)
    for name, arr in columns:
        rec[name] = arr
    parts = [head, rec.tobytes()]
    if faces is not None:
        frec = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
        frec["n"] = 3
        frec["v"] = faces
        parts.append(frec.tobytes())
    return b"".join(parts)

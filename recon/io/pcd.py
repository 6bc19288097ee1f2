"""PCD (Point Cloud Library) files: ascii, binary and binary_compressed (LZF) bodies.

Header keys read: VERSION, FIELDS, SIZE, TYPE, COUNT (default 1), WIDTH, HEIGHT,
VIEWPOINT (ignored), POINTS, DATA. Fields with COUNT > 1 (descriptors) come back as
(N, COUNT) arrays; fields named ``_`` (padding) are skipped. Binary bodies are
little-endian, as PCL writes them on every platform it supports.
"""

from __future__ import annotations

import functools

import numpy as np

from recon.errors import InputError

_TYPE_CODES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4",
               ("I", 8): "i8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
LZF_MAX_RATIO = 136
"LZF's most compact token (3 bytes) copies 264 bytes: no block unpacks to more than this many times its size."
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


def _header_error(path, detail: str) -> InputError:
    return InputError(f"{path}: corrupt PCD header: {detail}")


def read_pcd(path, data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse a PCD file's bytes. Returns ``(header, fields)``: ``fields[name]`` is (N,) or (N, count)."""
    header, offset = _parse_header(path, data)
    names, codes, counts, n = header["fields"], header["codes"], header["counts"], header["points"]
    mode = header["data"]
    if mode == "ascii":
        width = sum(counts)
        text = data[offset:].decode("ascii", errors="replace")
        # Organised clouds write missing points as "nan"; fromstring reads them. A packed
        # float rgb is printed as its float value; casting back to float32 restores its bits.
        try:
            nums = np.fromstring(text, dtype=np.float64, sep=" ") if text.strip() else np.zeros(0)
        except ValueError:
            raise InputError(f"{path}: corrupt ascii PCD body: a value is not a number") from None
        if len(nums) < n * width:
            raise InputError(f"{path}: truncated PCD body: {n} points x {width} values needed, "
                             f"the body has {len(nums)}")
        block = nums[: n * width].reshape(n, width)
        out, col = {}, 0
        for name, code, count in zip(names, codes, counts):
            vals = block[:, col:col + count]
            col += count
            if name == "_":
                continue
            out[name] = _squeeze(vals if code[0] == "f" else np.rint(vals), code, count)
        return header, out
    if mode == "binary":
        try:
            dt = np.dtype([(f"f{i}", "<" + code, (count,)) for i, (code, count) in enumerate(zip(codes, counts))])
        except (ValueError, TypeError, OverflowError):
            raise _header_error(path, f"COUNT values {counts} make a record too large to read") from None
        need = n * dt.itemsize
        have = len(data) - offset
        if have < need:
            raise InputError(f"{path}: truncated PCD body: {n} points x {dt.itemsize} bytes = {need} "
                             f"bytes needed, the file has {have}")
        arr = np.frombuffer(data, dtype=dt, count=n, offset=offset)
        out = {}
        for i, (name, code, count) in enumerate(zip(names, codes, counts)):
            if name != "_":
                out[name] = _squeeze(arr[f"f{i}"], code, count)
        return header, out
    # binary_compressed: two uint32 sizes, then LZF data; decompressed, each field is stored
    # contiguously for all points (column-major), in header order.
    if len(data) < offset + 8:
        raise InputError(f"{path}: truncated PCD body: the compressed block's sizes are missing")
    csize, usize = (int(v) for v in np.frombuffer(data, "<u4", 2, offset))
    if len(data) < offset + 8 + csize:
        raise InputError(f"{path}: truncated PCD body: {csize} compressed bytes declared, "
                         f"the file has {len(data) - offset - 8}")
    sizes = [np.dtype(code).itemsize * count for code, count in zip(codes, counts)]
    if usize > LZF_MAX_RATIO * csize + 64:
        raise InputError(f"{path}: corrupt PCD body: {csize} compressed bytes cannot unpack to the "
                         f"{usize} bytes declared")
    if usize != n * sum(sizes):
        raise InputError(f"{path}: corrupt PCD body: the compressed block unpacks to {usize} bytes, "
                         f"{n} points need {n * sum(sizes)}")
    raw = lzf_decompress(np.frombuffer(data, np.uint8, csize, offset + 8), usize)
    if raw is None:
        raise InputError(f"{path}: corrupt PCD body: the LZF-compressed data does not decode")
    out, pos = {}, 0
    for name, code, count, size in zip(names, codes, counts, sizes):
        block = raw[pos:pos + n * size].view("<" + code).reshape(n, count)
        pos += n * size
        if name != "_":
            out[name] = _squeeze(block, code, count)
    return header, out


def _squeeze(vals: np.ndarray, code: str, count: int) -> np.ndarray:
    vals = np.asarray(vals).reshape(len(vals), count)
    vals = vals[:, 0] if count == 1 else vals
    return np.ascontiguousarray(vals).astype(code)


def _parse_header(path, data: bytes) -> tuple[dict, int]:
    pos, values = 0, {}
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise _header_error(path, "no DATA line")
        line = data[pos:nl].decode("latin-1").strip()
        pos = nl + 1
        if not line or line.startswith("#"):
            continue
        words = line.split()
        key = words[0].upper()
        if key not in _KEYS:
            raise _header_error(path, f"unexpected line {line[:60]!r}")
        values[key] = words[1:]
        if key == "DATA":
            break
    for key in ("FIELDS", "SIZE", "TYPE"):
        if key not in values:
            raise _header_error(path, f"no {key} line")
    names = values["FIELDS"]
    k = len(names)
    counts = values.get("COUNT", ["1"] * k)
    if not (len(values["SIZE"]) == len(values["TYPE"]) == len(counts) == k):
        raise _header_error(path, f"FIELDS, SIZE, TYPE and COUNT list different numbers of entries "
                                  f"({k}, {len(values['SIZE'])}, {len(values['TYPE'])}, {len(counts)})")
    try:
        sizes = [int(s) for s in values["SIZE"]]
        counts = [int(c) for c in counts]
        width = int(values.get("WIDTH", ["0"])[0])
        height = int(values.get("HEIGHT", ["1"])[0])
        points = int(values["POINTS"][0]) if "POINTS" in values else width * height
    except (ValueError, IndexError):
        raise _header_error(path, "SIZE, COUNT, WIDTH, HEIGHT and POINTS must be integers") from None
    codes = []
    for name, t, s in zip(names, values["TYPE"], sizes):
        code = _TYPE_CODES.get((t.upper(), s))
        if code is None:
            raise _header_error(path, f"field {name!r} has an unsupported TYPE {t} SIZE {s}")
        codes.append(code)
    if points < 0 or any(c < 1 for c in counts):
        raise _header_error(path, "POINTS must be >= 0 and every COUNT >= 1")
    mode = (values["DATA"] or [""])[0].lower()
    if mode not in ("ascii", "binary", "binary_compressed"):
        raise _header_error(path, f"unknown DATA {mode!r} (expected ascii, binary or binary_compressed)")
    return {"fields": names, "codes": codes, "counts": counts, "points": points,
            "width": width, "height": height, "data": mode}, pos


def packed_rgb(values: np.ndarray) -> np.ndarray:
    """(N,) packed PCL colour (float32 bits or uint32, 0x00RRGGBB) -> (N, 3) uint8."""
    v = np.asarray(values)
    if v.dtype.kind == "f":
        v = v.astype(np.float32).view(np.uint32)
    v = v.astype(np.uint32)
    return np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=1).astype(np.uint8)


def lzf_decompress(src: np.ndarray, size: int) -> np.ndarray | None:
    """Decode LZF data ``src`` (uint8) into ``size`` bytes; None when it is corrupt."""
    out = np.empty(size, dtype=np.uint8)
    written = _lzf_kernel()(np.ascontiguousarray(src, dtype=np.uint8), out)
    return out if written == size else None


@functools.lru_cache(maxsize=1)
def _lzf_kernel():
    import numba

    @numba.njit(cache=True)
    def lzf(src, out):
        # LZF: a control byte < 32 starts a run of (ctrl + 1) literal bytes; otherwise its
        # top 3 bits are a length (7 = read one more byte) and the rest with the next byte
        # an offset back into the output, from where (length + 2) bytes are copied.
        ip = 0
        op = 0
        n = src.shape[0]
        m = out.shape[0]
        while ip < n:
            ctrl = np.int64(src[ip])
            ip += 1
            if ctrl < 32:
                length = ctrl + 1
                if ip + length > n or op + length > m:
                    return -1
                for i in range(length):
                    out[op + i] = src[ip + i]
                ip += length
                op += length
            else:
                length = ctrl >> 5
                if length == 7:
                    if ip >= n:
                        return -1
                    length += np.int64(src[ip])
                    ip += 1
                if ip >= n:
                    return -1
                ref = op - ((ctrl & 31) << 8) - 1 - np.int64(src[ip])
                ip += 1
                length += 2
                if ref < 0 or op + length > m:
                    return -1
                for i in range(length):
                    out[op + i] = out[ref + i]
                op += length
        return op

    return lzf

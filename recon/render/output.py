"""Image files: colour PNG, normal-map PNG, hit-mask PNG, depth .npy, turntable GIF.

Every writer goes through :func:`recon.io.atomic.atomic_path` (temporary file, then rename)
and refuses to overwrite any of ``inputs``. Pillow does the encoding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError

PASSES = ("color", "normal", "depth", "mask")


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1] (the standard piecewise curve)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


def rgba_to_uint8(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) linear float RGBA -> (H, W, 4) uint8 sRGB (alpha is stored linearly)."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"rgba must be (H, W, 4), got {rgba.shape}")
    out = np.empty(rgba.shape, np.uint8)
    out[..., :3] = np.round(linear_to_srgb(rgba[..., :3]) * 255.0).astype(np.uint8)
    out[..., 3] = np.round(np.clip(rgba[..., 3], 0, 1) * 255.0).astype(np.uint8)
    return out


def normal_to_uint8(normal: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """World-space unit normals (H, W, 3) -> RGBA uint8: rgb = (n + 1) / 2, alpha = hit."""
    out = np.zeros(normal.shape[:2] + (4,), np.uint8)
    out[..., :3] = np.round((np.clip(normal, -1, 1) + 1.0) * 127.5).astype(np.uint8)
    out[..., 3] = np.where(hit, 255, 0).astype(np.uint8)
    out[~hit, :3] = 0
    return out


def mask_to_uint8(hit: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) uint8, 255 on hits."""
    return np.where(hit, 255, 0).astype(np.uint8)


def write_png(path, image: np.ndarray, *, inputs=(), drop_alpha: bool = False) -> Path:
    """Write uint8 (H, W), (H, W, 3) or (H, W, 4) as PNG; ``drop_alpha`` writes RGB only."""
    from PIL import Image

    from recon.io.atomic import atomic_path

    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {img.dtype}")
    if drop_alpha and img.ndim == 3 and img.shape[2] == 4:
        img = np.ascontiguousarray(img[..., :3])
    path = Path(path)
    with atomic_path(path, inputs=inputs) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return path


def write_npy(path, array: np.ndarray, *, inputs=()) -> Path:
    from recon.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path, inputs=inputs) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    return path


def write_gif(path, frames: list[np.ndarray], *, fps: float = 12.0, inputs=(), transparent: bool = False) -> Path:
    """Write uint8 RGBA frames (H, W, 4) as a looping GIF (palette per frame).

    transparent : pixels with alpha < 128 become the GIF's transparent colour.
    """
    from PIL import Image

    from recon.io.atomic import atomic_path

    if not frames:
        raise InputError("a GIF needs at least one frame")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    images = []
    for f in frames:
        rgb = Image.fromarray(np.ascontiguousarray(f[..., :3]))
        if transparent:
            # 255 colours for the picture, index 255 for the background
            q = rgb.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            idx = np.asarray(q).copy()
            idx[f[..., 3] < 128] = 255
            pal = q.getpalette()[: 255 * 3] + [0, 0, 0]
            q = Image.fromarray(idx, mode="P")
            q.putpalette(pal)
            q.info["transparency"] = 255
            images.append(q)
        else:
            images.append(rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    path = Path(path)
    kw = {"transparency": 255, "disposal": 2} if transparent else {}
    with atomic_path(path, inputs=inputs) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000.0 / fps)), loop=0, **kw)
    return path


def parse_passes(text: str) -> tuple[str, ...]:
    """'color,normal' -> ('color', 'normal'); unknown names are refused."""
    names = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    if not names:
        raise InputError(f"--passes needs at least one of {', '.join(PASSES)}")
    bad = [p for p in names if p not in PASSES]
    if bad:
        raise InputError(f"unknown pass {bad[0]!r}; choose from {', '.join(PASSES)}")
    return tuple(dict.fromkeys(names))

"""Turning pipeline outputs into what the caller asked for: JSON (PNG base64 + float arrays), .npz, PNG, GIF.

Output names (``outputs=`` query parameter, comma-separated; ``all`` = every one the model has):

    texture, reconstruction            images (B, C, N, N) in [0, 1]
    albedo, shading                    intrinsic models: (B, C, N, N) and (B, 1, N, N)
    grid, displacement                 (B, 2, N, N) float32; ``deformation`` = both
    increments                         (B, 2, N, N) decoder output in (0, 1), before integration
    affine                             (B, 6) rows of the 2x3 matrix (affine+integral models)
    warped_grid, flow                  pictures of the deformation (RGB PNG only)

In JSON an image is ``{"shape", "png"}`` (``arrays=values|both`` adds ``"values"``, nested float lists),
a field or vector always carries ``"values"``; pictures carry ``"png"``. The .npz holds exact float32 arrays
(pictures excluded), named as above plus the latents. ``format=png`` is one PNG sheet.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any, Literal

import numpy as np

from bundle.layout import Arrays
from bundle.manifest import Manifest
from service import imaging
from service.errors import UnprocessableError

IMAGES = ("texture", "reconstruction", "albedo", "shading")
FIELDS = ("grid", "displacement", "increments")
VECTORS = ("affine",)
PICTURES = ("warped_grid", "flow")
ArraysMode = Literal["png", "values", "both"]
NPZ_MEDIA_TYPE = "application/x-npz"


def units(manifest: Manifest) -> dict[str, Any]:
    """The deformation conventions, stated in every JSON response that carries a field."""
    n = manifest.image_size
    return {
        "layout": "NCHW",
        "grid": "absolute sampling positions: output pixel (i, j) samples the texture at grid[:, :, i, j]",
        "displacement": "grid minus the identity grid, same units",
        "channels": ["x (along the width)", "y (along the height)"],
        "coordinates": "normalised: -1 and +1 are the centres of the border pixels (align_corners=True)",
        "pixel": 2.0 / (n - 1),
    }


def available(manifest: Manifest) -> list[str]:
    names = ["texture", "reconstruction"]
    if manifest.variant == "intrinsic":
        names += ["albedo", "shading"]
    if manifest.warp is not None:
        names += ["grid", "displacement", "increments"]
        if manifest.warp.affine:
            names.append("affine")
        names += list(PICTURES)
    return names


def parse_outputs(text: str | None, manifest: Manifest, default: list[str]) -> list[str]:
    """``"texture,deformation"`` → validated, de-duplicated names; unknown or unavailable → 422."""
    have = available(manifest)
    if text is None or not text.strip():
        return [n for n in default if n in have]
    out: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        expanded = have if name == "all" else ["grid", "displacement"] if name == "deformation" else [name]
        for n in expanded:
            if n not in have:
                raise UnprocessableError(
                    f"output {n!r} is not available for a {manifest.variant} model; choose from {have}",
                    "output_unavailable",
                )
            if n not in out:
                out.append(n)
    return out


def picture(name: str, outs: Arrays, i: int, scale: int) -> np.ndarray:
    """Any output of item ``i`` as an ``(H, W, 3)`` uint8 panel at ``N * scale``."""
    if name in IMAGES:
        return imaging.upscale(imaging.to_uint8(outs[name][i]), scale)
    if name == "warped_grid":
        return imaging.warped_grid(outs["grid"][i], imaging.to_uint8(outs["reconstruction"][i]), scale)
    if name in ("flow", "displacement"):
        return imaging.flow_colours(outs["displacement"][i], scale)
    if name == "grid":
        return imaging.warped_grid(outs["grid"][i], imaging.to_uint8(outs["reconstruction"][i]) * 0, scale)
    if name == "increments":
        inc = outs["increments"][i]
        rgb = np.stack([inc[0], inc[1], np.zeros_like(inc[0])])
        return imaging.upscale(imaging.to_uint8(rgb), scale)
    raise UnprocessableError(f"output {name!r} has no picture", "output_unavailable")


def b64png(img: np.ndarray) -> str:
    return base64.b64encode(imaging.png_bytes(img)).decode("ascii")


def item_json(outs: Arrays, i: int, names: list[str], arrays: ArraysMode, scale: int) -> dict[str, Any]:
    """One item's requested outputs as JSON-ready dicts."""
    result: dict[str, Any] = {}
    for name in names:
        if name in PICTURES:
            result[name] = {"png": b64png(picture(name, outs, i, scale))}
            continue
        arr = outs[name][i]
        entry: dict[str, Any] = {"shape": list(arr.shape)}
        if name in IMAGES:
            if arrays in ("png", "both"):
                entry["png"] = b64png(arr)
            if arrays in ("values", "both"):
                entry["values"] = arr.tolist()
        else:
            entry["values"] = arr.tolist()
        result[name] = entry
    return result


# ZIP records of stored (uncompressed) members, as np.savez writes them (APPNOTE 4.3.7, 4.3.12, 4.3.16).
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, the earliest ZIP date: the bytes do not depend on the clock


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy (format 1.0) header of a C-ordered little-endian float32 array, as ``np.lib.format`` writes it:
    magic, version, length, the dict padded with spaces so that the data starts at a multiple of 64."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': " + repr(shape) + ", }"
    pad = -(10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def npz_bytes(arrays: Arrays) -> bytes:
    """An .npz of exact float32 arrays: a ZIP of stored ``NAME.npy`` members, byte for byte what ``np.savez``
    writes but for the members' dates, read back by ``np.load``. Written here in one pass because ``np.savez``
    goes through ``zipfile``'s general machinery and ``np.lib.format`` for every member: for /reconstruct's
    nine arrays that was half of the event loop's time per request under load (docs/benchmarks.md)."""
    out: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, value in arrays.items():
        arr = np.asarray(value, dtype="<f4", order="C")  # keeps 0-d arrays 0-d (ascontiguousarray would not)
        header, payload = _npy_header(arr.shape), arr.tobytes()
        fname = f"{name}.npy".encode()
        crc, size = zlib.crc32(payload, zlib.crc32(header)), len(header) + len(payload)
        out += [_LOCAL.pack(0x04034B50, 20, 0, 0, 0, _DOS_DATE, crc, size, size, len(fname), 0), fname, header, payload]
        central.append(
            _CENTRAL.pack(0x02014B50, 20, 20, 0, 0, 0, _DOS_DATE, crc, size, size, len(fname), 0, 0, 0, 0, 0, offset)
            + fname
        )
        offset += _LOCAL.size + len(fname) + size
    directory = b"".join(central)
    end = _END.pack(0x06054B50, 0, 0, len(central), len(central), len(directory), offset, 0)
    return b"".join(out) + directory + end


def npz_arrays(outs: Arrays, names: list[str], latents: Arrays) -> Arrays:
    """The exact float32 arrays of a response: requested outputs (pictures excluded) plus the latents."""
    arrays = {n: outs[n] for n in names if n not in PICTURES}
    arrays.update(latents)
    return arrays


def sheet_png(outs: Arrays, names: list[str], count: int, scale: int, *, by_row: bool = True) -> bytes:
    """One PNG: a row per item (``by_row``) with a column per output, or a row per output (frame strip)."""
    if by_row:
        rows = [[picture(n, outs, i, scale) for n in names] for i in range(count)]
    else:
        rows = [[picture(n, outs, i, scale) for i in range(count)] for n in names]
    return imaging.png_bytes(imaging.sheet(rows))


def gif(outs: Arrays, names: list[str], count: int, scale: int) -> bytes:
    frames = [imaging.sheet([[picture(n, outs, i, scale) for n in names]]) for i in range(count)]
    return imaging.gif_bytes(frames)

"""Procedural H&E-like tissue, rendered tile by tile from stateless hashed noise.

Every value is a pure function of the level-0 pixel position and the seed, so that any tile
can be rendered on its own and neighbouring tiles agree across their borders. Nuclei live in
the cells of a fixed grid (one nucleus at most per cell, wholly inside it), which keeps them
separated and lets a tile find the nuclei that touch it without looking at its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CELL = 32  # level-0 px: one nucleus at most per cell of this size
_F = np.float32

GLASS = np.array([243, 242, 246], _F)
STROMA_LIGHT = np.array([246, 212, 230], _F)
STROMA_DARK = np.array([222, 128, 176], _F)
TUMOUR_TINT = np.array([205, 140, 200], _F)
NUCLEUS_NORMAL = np.array([112, 72, 160], _F)
NUCLEUS_TUMOUR = np.array([72, 38, 122], _F)


@dataclass(frozen=True)
class Fields:
    """The slide-wide parameters of the procedural tissue."""

    size: int
    seed: int

    @property
    def tissue_spacing(self) -> float:
        return self.size / 5.0

    @property
    def tumour_spacing(self) -> float:
        return max(self.size / 7.0, 256.0)


def _hash(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Uniform floats in [0, 1) from integer lattice coordinates (a 32-bit integer hash)."""
    h = (ix.astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (
        iy.astype(np.uint32) * np.uint32(0xD8163841)
    )
    h ^= np.uint32((salt * 0x9E3779B1) & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return (h >> np.uint32(8)).astype(_F) * _F(1.0 / (1 << 24))


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def value_noise(x: np.ndarray, y: np.ndarray, spacing: float, salt: int) -> np.ndarray:
    """Smooth value noise in [0, 1] at the points (x, y) (any broadcastable shapes)."""
    gx = np.asarray(x, np.float64) / spacing
    gy = np.asarray(y, np.float64) / spacing
    ix = np.floor(gx)
    iy = np.floor(gy)
    sx = _smooth((gx - ix).astype(_F))
    sy = _smooth((gy - iy).astype(_F))
    ix = ix.astype(np.int64)
    iy = iy.astype(np.int64)
    v00 = _hash(ix, iy, salt)
    v10 = _hash(ix + 1, iy, salt)
    v01 = _hash(ix, iy + 1, salt)
    v11 = _hash(ix + 1, iy + 1, salt)
    top = v00 + sx * (v10 - v00)
    bottom = v01 + sx * (v11 - v01)
    return top + sy * (bottom - top)


def grid_noise(x0: float, y0: float, w: int, h: int, spacing: float, salt: int, step: float = 1.0):
    """Value noise on a regular grid of pixel centres starting at level-0 (x0, y0).

    Equal to ``value_noise`` on that grid, but hashes only the lattice points the grid spans.
    """
    gx = (x0 + (np.arange(w) + 0.5) * step) / spacing
    gy = (y0 + (np.arange(h) + 0.5) * step) / spacing
    ix = np.floor(gx).astype(np.int64)
    iy = np.floor(gy).astype(np.int64)
    sx = _smooth((gx - ix).astype(_F))[None, :]
    sy = _smooth((gy - iy).astype(_F))[:, None]
    lx = np.arange(ix[0], ix[-1] + 2)
    ly = np.arange(iy[0], iy[-1] + 2)
    lattice = _hash(lx[None, :], ly[:, None], salt)
    jx = ix - ix[0]
    jy = iy - iy[0]
    rows0 = lattice[jy]
    rows1 = lattice[jy + 1]
    v00, v10 = rows0[:, jx], rows0[:, jx + 1]
    v01, v11 = rows1[:, jx], rows1[:, jx + 1]
    top = v00 + sx * (v10 - v00)
    bottom = v01 + sx * (v11 - v01)
    return top + sy * (bottom - top)


def tissue_field(f: Fields, x0: float, y0: float, w: int, h: int, step: float = 1.0) -> np.ndarray:
    """Positive inside the tissue blob, on a grid of pixel centres; its zero level is the border."""
    n = f.size
    xs = (x0 + (np.arange(w) + 0.5) * step)[None, :]
    ys = (y0 + (np.arange(h) + 0.5) * step)[:, None]
    dx = ((xs - 0.5 * n) / (0.40 * n)).astype(_F)
    dy = ((ys - 0.5 * n) / (0.37 * n)).astype(_F)
    radial = 1.0 - (dx * dx + dy * dy)
    wobble = grid_noise(x0, y0, w, h, f.tissue_spacing, f.seed * 7 + 1, step) - 0.5
    wobble2 = grid_noise(x0, y0, w, h, f.tissue_spacing / 2.5, f.seed * 7 + 2, step) - 0.5
    return (radial + 0.9 * wobble + 0.35 * wobble2).astype(_F)


def tumour_field(
    f: Fields,
    x0: float,
    y0: float,
    w: int,
    h: int,
    step: float = 1.0,
    tissue: np.ndarray | None = None,
) -> np.ndarray:
    """Positive inside the tumour regions (which lie inside the tissue), on a grid of pixel centres."""
    a = grid_noise(x0, y0, w, h, f.tumour_spacing, f.seed * 7 + 3, step)
    b = grid_noise(x0, y0, w, h, f.tumour_spacing / 2.3, f.seed * 7 + 4, step)
    if tissue is None:
        tissue = tissue_field(f, x0, y0, w, h, step)
    return (np.minimum(0.7 * a + 0.3 * b - 0.6, tissue - 0.08)).astype(_F)


def _cell_params(f: Fields, cx0: int, cy0: int, ncx: int, ncy: int) -> dict[str, np.ndarray]:
    """Parameters of the nucleus (if any) of each cell in a block of the cell grid."""
    icx = np.arange(cx0, cx0 + ncx)[None, :].repeat(ncy, 0)
    icy = np.arange(cy0, cy0 + ncy)[:, None].repeat(ncx, 1)
    centre_x = (icx + 0.5) * CELL
    centre_y = (icy + 0.5) * CELL
    tissue = tissue_field(f, cx0 * CELL, cy0 * CELL, ncx, ncy, CELL)
    tumour = tumour_field(f, cx0 * CELL, cy0 * CELL, ncx, ncy, CELL, tissue) > 0
    s = f.seed * 101
    u = [_hash(icx, icy, s + k) for k in range(9)]
    density = np.where(tumour, 0.88, 0.30 + 0.15 * u[8])
    present = (tissue > 0.03) & (u[0] < density)
    radius = np.where(tumour, 8.0 + 3.5 * u[1], 5.0 + 3.0 * u[1])
    elong = np.where(tumour, 1.0 + 0.35 * u[2], 1.0 + 0.8 * u[2] ** 2)
    amp = np.where(tumour, 0.10 + 0.10 * u[3], 0.02 + 0.05 * u[3])
    semi_a = radius * np.sqrt(elong)
    semi_b = radius / np.sqrt(elong)
    extent = semi_a * (1.0 + amp)
    limit = CELL / 2 - 1.5
    shrink = np.minimum(1.0, limit / extent)
    semi_a = semi_a * shrink
    semi_b = semi_b * shrink
    jitter = np.maximum(limit - semi_a * (1.0 + amp), 0.0)
    return {
        "present": present,
        "tumour": tumour,
        "nx": (centre_x + (2 * u[4] - 1) * jitter).astype(_F),
        "ny": (centre_y + (2 * u[5] - 1) * jitter).astype(_F),
        "a": semi_a.astype(_F),
        "b": semi_b.astype(_F),
        "theta": (np.pi * u[6]).astype(_F),
        "amp": amp.astype(_F),
        "phase": (2 * np.pi * u[7]).astype(_F),
        "id": (icy.astype(np.int64) * ((f.size + CELL - 1) // CELL) + icx + 1).astype(np.int32),
    }


def render_tile(f: Fields, x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Render the level-0 region (x0, y0, w, h): RGB uint8 (h, w, 3) and nuclei labels int32 (h, w)."""
    xs = (x0 + np.arange(w) + 0.5).astype(np.float64)[None, :]
    ys = (y0 + np.arange(h) + 0.5).astype(np.float64)[:, None]
    tissue = tissue_field(f, x0, y0, w, h)
    inside = tissue > 0
    fine = grid_noise(x0, y0, w, h, 2.5, f.seed * 13 + 4)
    glass = GLASS + 3.0 * (fine[..., None] - 0.5)
    if not inside.any():
        return np.clip(glass + 0.5, 0, 255).astype(np.uint8), np.zeros((h, w), np.int32)

    # stroma: warped anisotropic fibres over a patchy background
    warp = grid_noise(x0, y0, w, h, 90.0, f.seed * 13 + 1) - 0.5
    fib = value_noise(xs / 6.0, ys + 60.0 * warp, 5.0, f.seed * 13 + 2)
    patch = grid_noise(x0, y0, w, h, 140.0, f.seed * 13 + 3)
    mix = np.clip(0.25 + 0.5 * fib + 0.35 * (patch - 0.5) + 0.15 * (fine - 0.5), 0, 1)[..., None]
    rgb = STROMA_LIGHT + mix * (STROMA_DARK - STROMA_LIGHT)
    tumour_px = (tumour_field(f, x0, y0, w, h, 1.0, tissue) > 0)[..., None]
    rgb = np.where(tumour_px, 0.55 * rgb + 0.45 * TUMOUR_TINT, rgb)

    # nuclei: each pixel only looks at the nucleus of its own cell, so the tile is viewed as
    # blocks (cell row, y in cell, cell column, x in cell) and cell parameters broadcast
    cx0, cy0 = x0 // CELL, y0 // CELL
    ncx = (x0 + w - 1) // CELL - cx0 + 1
    ncy = (y0 + h - 1) // CELL - cy0 + 1
    p = _cell_params(f, cx0, cy0, ncx, ncy)
    ox = x0 - cx0 * CELL  # offset of the tile inside its first cell
    oy = y0 - cy0 * CELL
    local = np.arange(CELL, dtype=_F) + _F(0.5)
    cell_x = (np.arange(cx0, cx0 + ncx) * CELL).astype(_F)
    cell_y = (np.arange(cy0, cy0 + ncy) * CELL).astype(_F)
    ddx = (cell_x[None, :] - p["nx"])[:, None, :, None] + local[None, None, None, :]
    ddy = (cell_y[:, None] - p["ny"])[:, None, :, None] + local[None, :, None, None]
    ct, st = np.cos(p["theta"]), np.sin(p["theta"])

    def cell(name_or_array):
        arr = p[name_or_array] if isinstance(name_or_array, str) else name_or_array
        return arr[:, None, :, None]

    u = cell(ct / p["a"]) * ddx + cell(st / p["a"]) * ddy
    v = cell(-st / p["b"]) * ddx + cell(ct / p["b"]) * ddy
    rho2 = u * u + v * v
    rho = np.sqrt(rho2)
    inv = 1.0 / np.maximum(rho, _F(1e-6))
    cphi, sphi = u * inv, v * inv
    sin2 = 2 * sphi * cphi
    cos2 = cphi * cphi - sphi * sphi
    sin3 = sphi * (3 - 4 * sphi * sphi)
    cos3 = cphi * (4 * cphi * cphi - 3)
    ph = p["phase"]
    harm = cell(0.6 * np.cos(ph)) * sin2 + cell(0.6 * np.sin(ph)) * cos2
    harm += cell(0.4 * np.cos(2 * ph)) * sin3 - cell(0.4 * np.sin(2 * ph)) * cos3
    border = 1.0 + cell(p["amp"]) * harm
    present = cell(p["present"])
    alpha = np.clip((border - rho) * cell(p["b"]) + 0.5, 0, 1) * present
    nucleus_inside = (rho < border) & present
    ids = np.where(nucleus_inside, cell(p["id"]), 0)

    def crop(block: np.ndarray) -> np.ndarray:
        full = block.reshape(ncy * CELL, ncx * CELL, *block.shape[4:])
        return full[oy : oy + h, ox : ox + w]

    is_tumour = crop(np.broadcast_to(cell(p["tumour"]), (ncy, CELL, ncx, CELL)))[..., None]
    rho_t = crop(rho)
    alpha_t = crop(alpha)
    chrom = grid_noise(x0, y0, w, h, 2.0, f.seed * 13 + 5)
    shade = (0.82 + 0.32 * chrom - 0.12 * np.clip(1.0 - rho_t, 0, 1))[..., None]
    nucleus = np.where(is_tumour, NUCLEUS_TUMOUR, NUCLEUS_NORMAL) * shade
    a3 = alpha_t[..., None]
    rgb = rgb * (1 - a3) + nucleus * a3

    rgb = np.where(inside[..., None], rgb, glass)
    labels = np.where(inside, crop(ids), 0).astype(np.int32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), labels


def render_mask(
    f: Fields, x0: int, y0: int, w: int, h: int, downsample: int, which: str
) -> np.ndarray:
    """The tissue or tumour ground truth (uint8 0/1) on a grid of ``downsample`` level-0 px."""
    if which == "tissue":
        field = tissue_field(f, x0, y0, w, h, downsample)
    else:
        field = tumour_field(f, x0, y0, w, h, downsample)
    return (field > 0).astype(np.uint8)

"""The nearest comune to points outside the territory, for millions of points at a time.

A point outside is nearest to the comune owning the closest boundary segment. The index is
a grid of square cells (``CELL_M``) over the territory's bounding box widened by
``MARGIN_M``, in EPSG:32632. Each cell keeps the boundary segments that can be the
closest to *some* point of the cell: with ``d0`` the distance from the cell's centre to
its closest segment and ``h`` half the cell's diagonal, every point of the cell has a
segment within ``d0 + h``, so only segments within ``d0 + h`` of the cell can win
(a bound, not a heuristic). Points are grouped by cell and their exact point-to-segment
distances computed with numpy against that short list: the answer is the exact distance
to the comune's outline, the one shapely would give, in a few microseconds per thousand
points. Equal distances go to the lowest ISTAT code (comuni are in code order), like
border points in the lookup. Points beyond the grid use the STRtree (same rule).

Memory: the grid is built a block of rows at a time (the cells' boxes and the query's pairs
of one block, ~8k cells, exist at once, not the ~160k of the whole grid: built whole, it
peaked at ~200 MB, ~170 MB of which glibc then kept), candidates are stored in the narrowest
integer type that holds them (~3.5 MB in all, was 12.5), and the freed heap is handed back
to the system after the build. Queries go by blocks of points too, so a batch of a million
points does not hold ten million candidate pairs at once.

Start-up: the build is ~3 s of CPU, which every worker of every replica spent at each start,
beside its first requests. The first build is kept in the data dir (``cache/nearest-…npz``,
keyed by the territory's version and the grid's parameters, written atomically); later
starts read it in milliseconds, checked for consistency (a damaged file is built anew).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import shapely

from geo.memory import release_freed_memory
from geo.territory.model import Territory

#: Side of a grid cell, metres.
CELL_M = 250.0
#: How far beyond the territory's bounding box the grid reaches, metres.
MARGIN_M = 20_000.0
#: Distances within this many metres count as equal (then the lowest code wins).
TIE_M = 1e-6
#: Cells whose candidates are computed at once while building (bounds the build's memory).
BLOCK_CELLS = 8192
#: Points answered at once by a query (~10 pairs each: bounds a batch's memory, not its speed).
QUERY_BLOCK = 65_536
#: What a kept index depends on besides the territory: its layout and the grid's parameters.
CACHE_FORMAT = f"v1-{CELL_M:g}-{MARGIN_M:g}"

log = logging.getLogger(__name__)


def _narrowest(n: int) -> type[np.signedinteger]:
    """The narrowest signed integer type holding 0..n (indices of segments, of candidates)."""
    for kind in (np.int16, np.int32):
        if n <= np.iinfo(kind).max:
            return kind
    return np.int64


@dataclass(frozen=True)
class NearestIndex:
    """Boundary segments of every comune (metric) and, per grid cell, its candidates."""

    ax: np.ndarray
    ay: np.ndarray
    dx: np.ndarray  # b - a
    dy: np.ndarray
    len2: np.ndarray  # |b - a|², 1 for degenerate segments
    owner: np.ndarray  # comune index of each segment
    x0: float
    y0: float
    nx: int
    ny: int
    starts: np.ndarray  # candidates of cell k: cand[starts[k]:starts[k + 1]]
    cand: np.ndarray

    @classmethod
    def build(cls, t: Territory) -> NearestIndex:
        """Segments of all outlines, then each cell's candidate list (vectorised queries,
        one block of rows of cells at a time)."""
        parts, owner_of_part = shapely.get_parts(t.metric_geometries, return_index=True)
        rings, part_of_ring = shapely.get_rings(parts, return_index=True)
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        owner_of_ring = owner_of_part[part_of_ring]
        same = ring_of[1:] == ring_of[:-1]  # consecutive vertices of one ring
        a, b = coords[:-1][same], coords[1:][same]
        owner = owner_of_ring[ring_of[:-1][same]].astype(np.int64)
        x0, y0, x1, y1 = shapely.total_bounds(t.metric_geometries)
        x0, y0, x1, y1 = x0 - MARGIN_M, y0 - MARGIN_M, x1 + MARGIN_M, y1 + MARGIN_M
        nx, ny = int(np.ceil((x1 - x0) / CELL_M)), int(np.ceil((y1 - y0) / CELL_M))
        tree = shapely.STRtree(shapely.linestrings(np.stack([a, b], axis=1)))
        seg_type = _narrowest(len(a))
        counts, cands = [], []
        rows = max(1, BLOCK_CELLS // nx)
        for r0 in range(0, ny, rows):  # cell k = row * nx + col, blocks in k order
            gx, gy = np.meshgrid(np.arange(nx), np.arange(r0, min(ny, r0 + rows)), indexing="xy")
            cx0 = x0 + gx.ravel() * CELL_M
            cy0 = y0 + gy.ravel() * CELL_M
            centres = shapely.points(cx0 + CELL_M / 2, cy0 + CELL_M / 2)
            _, d0 = tree.query_nearest(centres, return_distance=True, all_matches=False)
            reach = d0 + CELL_M * np.sqrt(2) / 2 + 1e-6
            cells = shapely.box(cx0, cy0, cx0 + CELL_M, cy0 + CELL_M)
            cell_i, seg_i = tree.query(cells, predicate="dwithin", distance=reach)
            order = np.lexsort((seg_i, cell_i))
            cands.append(seg_i[order].astype(seg_type))
            counts.append(np.bincount(cell_i, minlength=cx0.size))
            del centres, cells, cell_i, seg_i, order
        cand = np.concatenate(cands)
        starts = np.zeros(nx * ny + 1, dtype=_narrowest(cand.size))
        np.cumsum(np.concatenate(counts), out=starts[1:])
        d = b - a
        len2 = (d**2).sum(axis=1)
        return cls(
            ax=a[:, 0].copy(), ay=a[:, 1].copy(), dx=d[:, 0].copy(), dy=d[:, 1].copy(),
            len2=np.where(len2 > 0, len2, 1.0), owner=owner, x0=float(x0), y0=float(y0),
            nx=nx, ny=ny, starts=starts, cand=cand,
        )  # fmt: skip

    def query(self, t: Territory, mx: np.ndarray, my: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(comune index, distance in metres) of the nearest comune of each metric point."""
        n = mx.size
        owner = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, np.nan)
        col = np.floor((mx - self.x0) / CELL_M)
        row = np.floor((my - self.y0) / CELL_M)
        on_grid = (col >= 0) & (col < self.nx) & (row >= 0) & (row < self.ny)
        cell = np.where(on_grid, row * self.nx + col, -1).astype(np.int64)
        on = np.flatnonzero(on_grid)
        for k in range(0, on.size, QUERY_BLOCK):  # bounded memory for millions of points
            pts = on[k : k + QUERY_BLOCK]
            c = cell[pts]
            counts = self.starts[c + 1] - self.starts[c]
            first = np.cumsum(counts) - counts  # where each point's pairs begin
            rep = np.repeat(np.arange(pts.size), counts)
            seg = self.cand[self.starts[c][rep] + np.arange(rep.size) - first[rep]]
            px, py = mx[pts][rep], my[pts][rep]
            u = (px - self.ax[seg]) * self.dx[seg] + (py - self.ay[seg]) * self.dy[seg]
            u = np.clip(u / self.len2[seg], 0.0, 1.0)
            d = np.hypot(px - self.ax[seg] - u * self.dx[seg], py - self.ay[seg] - u * self.dy[seg])
            best = np.minimum.reduceat(d, first)
            tied = np.where(d <= best[rep] + TIE_M, self.owner[seg], np.iinfo(np.int64).max)
            owner[pts] = np.minimum.reduceat(tied, first)
            dist[pts] = best
        off = np.flatnonzero(~on_grid)
        if off.size:  # far away: the STRtree, lowest index among the equidistant
            pts = shapely.points(mx[off], my[off])
            pi, gi = t.metric_tree.query_nearest(pts, all_matches=True)
            dd = shapely.distance(t.metric_geometries[gi], pts[pi])
            for j in range(off.size):
                sel = pi == j
                m = dd[sel].min()
                owner[off[j]] = gi[sel][dd[sel] <= m + TIE_M].min()
                dist[off[j]] = m
        return owner, dist


_indices: dict[str, NearestIndex] = {}
_lock = threading.Lock()
_SCALARS = ("x0", "y0", "nx", "ny")


def cache_path(t: Territory) -> Path:
    """Where the index of ``t`` is kept between starts (the service's data dir)."""
    from geo.settings import get_settings

    return get_settings().data_dir / "cache" / f"nearest-{t.version}-{CACHE_FORMAT}.npz"


def _kept(path: Path, t: Territory) -> NearestIndex | None:
    """The index kept at ``path``, or None when there is none or it does not hold together
    (another version of the file, a truncated write, a hand-edited one)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            got = {f.name: npz[f.name] for f in fields(NearestIndex)}
    except FileNotFoundError:
        return None
    except Exception as exc:  # unreadable: built again, and written over
        log.warning("nearest-comune index at %s unreadable, built again: %s", path, exc)
        return None
    try:
        idx = NearestIndex(
            **{k: v for k, v in got.items() if k not in _SCALARS},
            x0=float(got["x0"]), y0=float(got["y0"]), nx=int(got["nx"]), ny=int(got["ny"]),
        )  # fmt: skip
        n = idx.ax.size
        ok = (
            all(getattr(idx, k).shape == (n,) for k in ("ay", "dx", "dy", "len2", "owner"))
            and idx.starts.shape == (idx.nx * idx.ny + 1,)
            and int(idx.starts[0]) == 0
            and int(idx.starts[-1]) == idx.cand.size
            and bool((np.diff(idx.starts) >= 0).all())
            and (idx.cand.size == 0 or 0 <= int(idx.cand.min()) <= int(idx.cand.max()) < n)
            and (n == 0 or 0 <= int(idx.owner.min()) <= int(idx.owner.max()) < len(t.codes))
        )
    except Exception:
        ok = False
    if not ok:
        log.warning("nearest-comune index at %s inconsistent, built again", path)
        return None
    return idx


def _keep(path: Path, idx: NearestIndex) -> None:
    """Write ``idx`` to ``path`` atomically (a temp file renamed: workers starting together
    each read a whole file or none); a data dir that cannot be written is only logged."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".nearest-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{k.name: np.asarray(getattr(idx, k.name)) for k in fields(idx)})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("nearest-comune index not kept at %s: %s", path, exc)


def nearest_index(t: Territory) -> NearestIndex:
    """The index of ``t``: read from the data dir when kept there, else built (~3 s of CPU)
    and kept; once per territory version and process."""
    idx = _indices.get(t.version)
    if idx is None:
        with _lock:
            idx = _indices.get(t.version)
            if idx is None:
                path = cache_path(t)
                idx = _kept(path, t)
                if idx is None:
                    idx = NearestIndex.build(t)
                    release_freed_memory()  # the build's transient ~20 MB, back to the system
                    _keep(path, idx)
                _indices[t.version] = idx
    return idx


def warm_in_background(t: Territory | None = None) -> threading.Thread:
    """Read or build the index in a thread (a build is a few seconds of CPU), so the first
    batch lookup does not wait for it and the service starts at once. Not a daemon: a
    process that exits while it runs waits for it, rather than tearing the interpreter down
    under GEOS calls (which crashed short-lived processes, test workers among them)."""
    from geo.territory import get_territory

    thread = threading.Thread(
        target=lambda: nearest_index(t or get_territory()), name="nearest-index", daemon=False
    )
    thread.start()
    return thread

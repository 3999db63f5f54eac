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
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

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


def nearest_index(t: Territory) -> NearestIndex:
    """The index of ``t`` (built once per territory version, ~1 s)."""
    idx = _indices.get(t.version)
    if idx is None:
        with _lock:
            idx = _indices.get(t.version)
            if idx is None:
                idx = _indices[t.version] = NearestIndex.build(t)
                release_freed_memory()  # the build's transient ~20 MB, back to the system
    return idx


def warm_in_background(t: Territory | None = None) -> threading.Thread:
    """Build the index in a thread (a few seconds of CPU), so the first batch lookup does not
    wait for it and the service starts at once. Not a daemon: a process that exits while it
    runs waits for it, rather than tearing the interpreter down under GEOS calls (which
    crashed short-lived processes, test workers among them)."""
    from geo.territory import get_territory

    thread = threading.Thread(
        target=lambda: nearest_index(t or get_territory()), name="nearest-index", daemon=False
    )
    thread.start()
    return thread

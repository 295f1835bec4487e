"""Align a source face to a target face: Delaunay triangulation + piecewise affine warp.

The 68 landmarks are triangulated once; each triangle of the target face is filled from the
matching source triangle by its own affine map. The warp is done as one `cv2.remap` over the
target face's bounding box (a per-pixel affine looked up from a triangle-index image), so
neighbouring triangles share their edges without seams and the cost does not grow with the
number of triangles.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay


def triangulate(points: np.ndarray) -> np.ndarray:
    """(T, 3) vertex indices of the Delaunay triangulation of (N, 2) points."""
    return np.asarray(Delaunay(np.asarray(points, np.float64)).simplices, np.int32)


def warp_face(
    source: np.ndarray,
    source_points: np.ndarray,
    target_points: np.ndarray,
    target_shape: tuple[int, ...],
    triangles: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Warp `source` so its landmarks land on `target_points`.

    Returns (warped patch, coverage mask uint8 0/255, box (x0, y0, x1, y1)) where the patch
    and mask cover only the box of the target face in the target image (clipped to it).
    `triangles` defaults to the triangulation of the mean of both point sets, which keeps
    triangles from folding over on either face.
    """
    src = np.asarray(source_points, np.float32)
    dst = np.asarray(target_points, np.float32)
    if triangles is None:
        triangles = triangulate((src + dst) / 2)
    h, w = target_shape[:2]
    x0, y0 = np.floor(dst.min(axis=0)).astype(int)
    x1, y1 = np.ceil(dst.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        empty = np.zeros((0, 0), np.uint8)
        return np.zeros((0, 0, source.shape[2]), source.dtype), empty, (x0, y0, x0, y0)
    offset = np.array([x0, y0], np.float32)

    # Triangle index per pixel (0 = outside the face); uint16 holds any triangulation of 68.
    index = np.zeros((y1 - y0, x1 - x0), np.uint16)
    affines = np.zeros((len(triangles) + 1, 2, 3), np.float32)
    for i, tri in enumerate(triangles, start=1):
        d, s = dst[tri], src[tri]
        if abs(np.cross(d[1] - d[0], d[2] - d[0])) < 1e-3:
            continue  # a degenerate triangle covers no pixels
        affines[i] = cv2.getAffineTransform(d, s)  # target -> source: what remap needs
        cv2.fillConvexPoly(index, np.round(d - offset).astype(np.int32), i)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    a = affines[index]  # (H, W, 2, 3)
    map_x = a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2]
    map_y = a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2]
    covered = index > 0
    map_x[~covered] = -1.0
    map_y[~covered] = -1.0
    warped = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped, covered.astype(np.uint8) * 255, (int(x0), int(y0), int(x1), int(y1))

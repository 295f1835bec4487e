"""Blend a warped source face into the target: mask, colour, seamless cloning.

Order matters: (1) a convex-hull mask of the target's landmarks, pulled in from the jaw line
and with holes where the target's own mouth/eyes are kept; (2) the warped face's colours moved
to the target's skin (LAB mean and spread inside the mask); (3) Poisson ("seamless") cloning,
which takes the face's gradients and the target's colours at the mask edge; (4) a feathered
alpha blend that is exactly 0 outside the hull, so nothing outside the face changes.
"""

from __future__ import annotations

import cv2
import numpy as np

from deepfake_studio.faceswap.landmarks import INNER_MOUTH, LEFT_EYE, RIGHT_EYE

EXPRESSION_REGIONS = {"mouth": INNER_MOUTH, "left eye": LEFT_EYE, "right eye": RIGHT_EYE}


def _area(points: np.ndarray) -> float:
    return float(cv2.contourArea(np.asarray(points, np.float32)))


def kept_regions(source_points: np.ndarray, target_points: np.ndarray, stretch: float) -> list[str]:
    """Regions whose target area is over `stretch` times the source's (e.g. the target's mouth
    is open and the source's closed): warping would smear them, the target's own look better."""
    if stretch <= 0:
        return []
    src_scale = max(_area(cv2.convexHull(source_points.astype(np.float32))), 1.0)
    dst_scale = max(_area(cv2.convexHull(target_points.astype(np.float32))), 1.0)
    kept = []
    for name, region in EXPRESSION_REGIONS.items():
        # Compare areas relative to the whole face: the two faces differ in size.
        src = _area(source_points[region]) / src_scale
        dst = _area(target_points[region]) / dst_scale
        if dst > stretch * src + 2e-4:
            kept.append(name)
    return kept


def face_alpha(
    target_points: np.ndarray,
    shape: tuple[int, int],
    *,
    feather: float,
    erode: float,
    keep: list[str] | None = None,
) -> np.ndarray:
    """Float32 alpha in [0, 1] over an image of `shape`: 1 inside the face, fading to exactly 0
    at the landmarks' convex hull, with feathered holes over the `keep` regions."""
    points = np.asarray(target_points, np.float32)
    extent = points.max(axis=0) - points.min(axis=0)
    size = float(np.sqrt(max(extent[0], 1.0) * max(extent[1], 1.0)))
    feather_px = max(1.0, feather * size)
    erode_px = max(0, round(erode * size))

    hull = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(hull, np.round(cv2.convexHull(points)).astype(np.int32), 255)
    inner = hull
    shrink = erode_px + round(feather_px)  # the blur below spreads about feather_px outwards
    if shrink > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1))
        inner = cv2.erode(hull, kernel)
    holes = []
    for name in keep or []:
        poly = np.round(cv2.convexHull(points[EXPRESSION_REGIONS[name]])).astype(np.int32)
        holes.append(poly)
        cv2.fillConvexPoly(inner, poly, 0)
        # Widen the hole so the fade happens outside it: the lips' and lids' inner edges
        # belong to the target too.
        grow = max(1, round(0.02 * size + feather_px / 2))
        cv2.polylines(inner, [poly], True, 0, thickness=2 * grow)
    sigma = feather_px / 2
    alpha = cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), sigma)
    alpha[hull == 0] = 0.0  # exactly the target outside the hull, whatever the blur did
    for poly in holes:
        cv2.fillConvexPoly(alpha, poly, 0.0)  # and exactly the target's own mouth or eyes
    return alpha


def match_colors(face: np.ndarray, target: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """`face` (uint8 BGR/RGB) with its LAB mean and standard deviation, measured where
    `weight` > 0.5, moved to those of `target` over the same pixels (Reinhard transfer)."""
    region = weight > 0.5
    if region.sum() < 16:
        return face
    src = cv2.cvtColor(face, cv2.COLOR_RGB2LAB).astype(np.float32)
    dst = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    s, d = src[region], dst[region]
    s_mean, s_std = s.mean(axis=0), s.std(axis=0) + 1e-3
    d_mean, d_std = d.mean(axis=0), d.std(axis=0) + 1e-3
    # Limit the contrast change: a shadowed target would otherwise flatten the face.
    gain = np.clip(d_std / s_std, 0.5, 2.0)
    out = (src - s_mean) * gain + d_mean
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def seamless_clone(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson-clone `face` into `target` (same size) inside `mask` (uint8), in place."""
    mask = mask.copy()
    # OpenCV refuses a mask touching the border (its ROI would leave the image).
    mask[0, :] = mask[-1, :] = 0
    mask[:, 0] = mask[:, -1] = 0
    x, y, bw, bh = cv2.boundingRect(mask)
    if bw < 3 or bh < 3:
        return target
    # OpenCV centres the mask's box (width = max - min, without the +1) on `center`.
    center = (x + (bw - 1) // 2, y + (bh - 1) // 2)
    return cv2.seamlessClone(face, target, mask, center, cv2.NORMAL_CLONE)

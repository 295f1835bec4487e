"""Image face swap with the real dlib models: geometry, identity, untouched background, marks."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from deepfake_studio import Studio
from deepfake_studio.errors import FaceError, MediaError
from deepfake_studio.faceswap import FaceSwapConfig
from deepfake_studio.faceswap.blend import face_alpha, kept_regions
from deepfake_studio.faceswap.image import prepare_source, swap_faces
from deepfake_studio.provenance import Failure, verify
from deepfake_studio.provenance.image_watermark import ImageWatermarker

CONFIG = FaceSwapConfig()


def rgb(path: Path) -> np.ndarray:
    from deepfake_studio.faceswap.image import read_image

    return read_image(path, CONFIG)


@pytest.fixture(scope="module")
def obama_on_astronaut(face_models, obama: Path, astronaut: Path):  # type: ignore[no-untyped-def]
    target = rgb(astronaut)
    source = prepare_source(rgb(obama), face_models)
    return target, source, swap_faces(target, source, face_models, CONFIG)


def _descriptor_distance(face_models, a: np.ndarray, b: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    da = face_models.descriptor(a, face_models.detect(a)[0])
    db = face_models.descriptor(b, face_models.detect(b)[0])
    return float(np.linalg.norm(da - db))


def test_each_portrait_has_one_face_with_68_landmarks(face_models, obama, astronaut) -> None:  # type: ignore[no-untyped-def]
    for path in (obama, astronaut):
        faces = face_models.detect(rgb(path))
        assert len(faces) == 1
        assert faces[0].landmarks.shape == (68, 2)


def test_swapped_face_sits_on_the_target_landmarks(face_models, obama_on_astronaut) -> None:  # type: ignore[no-untyped-def]
    target, _, result = obama_on_astronaut
    assert result.faces_found == 1 and result.swapped == [0]
    before = face_models.detect(target)[0].landmarks
    after = face_models.detect(result.image)
    assert len(after) == 1
    error = np.linalg.norm(after[0].landmarks - before, axis=1)
    assert float(np.median(error)) < 3.0, error  # within a few pixels on a 512 px image
    assert float(error.max()) < 12.0


def test_result_looks_like_the_source_more_than_the_target(face_models, obama_on_astronaut) -> None:  # type: ignore[no-untyped-def]
    target, source, result = obama_on_astronaut
    to_source = _descriptor_distance(face_models, result.image, source.image)
    to_target = _descriptor_distance(face_models, result.image, target)
    assert to_source < to_target, (to_source, to_target)


def test_swap_between_the_shared_portraits(face_models, biden: Path, obama: Path) -> None:  # type: ignore[no-untyped-def]
    target = rgb(obama)
    source = prepare_source(rgb(biden), face_models)
    result = swap_faces(target, source, face_models, CONFIG)
    to_source = _descriptor_distance(face_models, result.image, source.image)
    to_target = _descriptor_distance(face_models, result.image, target)
    assert to_source < to_target, (to_source, to_target)


def test_nothing_outside_the_mask_changes(obama_on_astronaut) -> None:  # type: ignore[no-untyped-def]
    target, _, result = obama_on_astronaut
    outside = result.alpha == 0
    assert 0.5 < outside.mean() < 0.99  # the mask is the face, not the image
    assert np.array_equal(result.image[outside], target[outside])
    inside = result.alpha > 0.9
    assert np.abs(result.image[inside].astype(int) - target[inside]).mean() > 5


def test_an_opening_mouth_keeps_the_targets_own_mouth() -> None:
    face = np.array(
        [(x, 100.0 + 0.02 * (x - 50) ** 2) for x in np.linspace(0, 100, 17)]  # jaw
        + [(30.0 + i * 5, 20.0) for i in range(19)]  # brows and nose: unused here
        + [(30 + 4 * i, 40.0 + (i % 2)) for i in range(12)]  # eyes
        + [(35 + 2.5 * i, 80.0) for i in range(12)]  # outer lips
        + [(40 + 2.5 * i, 80.0) for i in range(8)],  # inner lips, closed
        np.float32,
    )
    open_mouth = face.copy()
    open_mouth[60:68, 1] = [80, 76, 75, 76, 80, 84, 85, 84]  # inner lips, open
    open_mouth[60:68, 0] = [40, 44, 48, 52, 56, 52, 48, 44]
    assert kept_regions(face, open_mouth, 1.6) == ["mouth"]
    assert kept_regions(open_mouth, face, 1.6) == []  # closing a mouth does not smear
    alpha = face_alpha(open_mouth, (140, 120), feather=0.05, erode=0.0, keep=["mouth"])
    assert alpha[80, 48] == 0.0 and alpha[60, 50] > 0.5


def test_studio_marks_and_signs_the_output(studio: Studio, obama, astronaut, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "swap.png"
    result = studio.faceswap(obama, astronaut, out)
    assert result.media == "image" and result.faces_found == 1 and result.faces_swapped == 1
    image = rgb(out)
    assert ImageWatermarker().detect(image).present
    assert not ImageWatermarker().detect(rgb(astronaut)).present
    # The mark is invisible: against the same swap without it, PSNR is about 42 dB.
    plain = studio.faceswap(obama, astronaut, tmp_path / "plain.png", watermark=False)
    assert not ImageWatermarker().detect(rgb(plain.path)).present
    psnr = cv2.PSNR(image, rgb(plain.path))
    assert psnr > 38, psnr
    # Its marks are in invisible-watermark's dwtDctSvd format: the library reads them too.
    assert ImageWatermarker().read_with_library(image).errors == 0

    report = verify(out, data_dir=studio.data_dir)
    assert report.ok, report.details
    record = json.loads(result.record.read_text())
    assert record["media"] == "image" and record["image"]["width"] == 512
    assert record["watermark"]["applied"] and record["inputs"]["source"]["name"] == "obama.jpg"
    out.write_bytes(out.read_bytes() + b"\0")
    assert verify(out, data_dir=studio.data_dir).failures == (Failure.MEDIA_MISMATCH,)


def test_jpeg_output_keeps_the_watermark(studio: Studio, obama, astronaut, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "swap.jpg"
    studio.faceswap(obama, astronaut, out)
    assert ImageWatermarker().detect(rgb(out)).present


def test_input_errors_are_one_line(studio: Studio, obama, astronaut, tmp_path) -> None:  # type: ignore[no-untyped-def]
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_text("not an image")
    out = tmp_path / "o.png"
    cases = [
        (lambda: studio.faceswap(blank, astronaut, out), FaceError, "no face found in the source"),
        (lambda: studio.faceswap(obama, blank, out), FaceError, "no face found in the target"),
        (lambda: studio.faceswap(obama, astronaut, out, face=1), FaceError, "--face 1 is out"),
        (lambda: studio.faceswap(corrupt, astronaut, out), MediaError, "cannot decode"),
        (lambda: studio.faceswap(obama, tmp_path / "x.gif", out), MediaError, "neither"),
        (lambda: studio.faceswap(obama, astronaut, tmp_path / "o.gif"), MediaError, ".gif"),
        (lambda: studio.faceswap(tmp_path / "no.jpg", astronaut, out), MediaError, "not exist"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind) as caught:
            call()
        assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))


def test_oversized_images_are_refused_before_decoding(tmp_path: Path, obama: Path) -> None:
    from deepfake_studio.faceswap.image import read_image

    with pytest.raises(MediaError, match="megapixel limit"):
        read_image(obama, FaceSwapConfig(max_image_pixels=100_000))
    with pytest.raises(MediaError, match="MB image limit"):
        read_image(obama, FaceSwapConfig(max_image_bytes=1000))

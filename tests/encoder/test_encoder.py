"""GE2E speaker encoder: agreement with resemblyzer, checkpoint formats, errors, batching."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from deepfake_studio.encoder import (
    EncoderConfig,
    EncoderWeightsError,
    SpeakerEncoder,
    default_weights_path,
    load_encoder_weights,
    partial_slices,
)
from deepfake_studio.encoder.features import mel_filterbank, mel_spectrogram
from deepfake_studio.errors import AudioError, StudioError
from tests.conftest import import_or_fail_in_ci, skip_or_fail_in_ci

# resemblyzer's partial step is round(16000 / rate / 160) frames: rate 1.25 -> 80 = 50 % overlap.
RESEMBLYZER_RATE = 1.25

# One clip per corpus, to vary speakers, lengths and recording conditions; the VCTK clip is
# fed at 22.05 kHz to exercise resampling (all clips in the shared set are 16 kHz).
CLIPS = [
    ("librispeech/LS103/103-1240-0000.flac", None),  # 14 s, long: many partials
    ("vctk/VCTK_p225/p225_003.flac", 22_050),  # 6 s, resampled
    ("ljspeech/LJ/LJ001-0002.flac", None),  # 1.9 s, short: a single partial
]
SAME_SPEAKER = "librispeech/LS103/103-1240-0000.flac"
OTHER_SPEAKER = "librispeech/LS1034/1034-121119-0000.flac"


@pytest.fixture(scope="module")
def load_clip(speech_dir: Path):  # speech_dir (tests/conftest.py) skips when data is absent
    """Load a clip of the shared speech set by manifest path, optionally resampled."""
    with (speech_dir / "manifest.csv").open(newline="") as handle:
        known = {row["path"] for row in csv.DictReader(handle)}

    def load(relative: str, rate: int | None = None) -> tuple[np.ndarray, int]:
        if relative not in known or not (speech_dir / relative).is_file():
            skip_or_fail_in_ci(f"clip {relative} is not in the shared speech set")
        wav, sr = sf.read(speech_dir / relative, dtype="float32")
        if rate is not None and rate != sr:
            wav, sr = soxr.resample(wav, sr, rate).astype(np.float32), rate
        return wav, sr

    return load


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return load_encoder_weights()


@pytest.fixture(scope="module")
def resemblyzer_encoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources / scipy.ndimage.morphology deprecations
        resemblyzer = import_or_fail_in_ci("resemblyzer", "the reference encoder")
        return resemblyzer, resemblyzer.VoiceEncoder(device="cpu", verbose=False)


# ---- (1) agreement with resemblyzer ---------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "rate", "seconds"),
    [*[(relative, rate, None) for relative, rate in CLIPS], (CLIPS[2][0], None, 1.2)],
    ids=["librispeech", "vctk-22k", "ljspeech", "ljspeech-1.2s-padded"],
)
def test_embedding_matches_resemblyzer(
    encoder, resemblyzer_encoder, relative, rate, seconds, load_clip
):
    resemblyzer, reference_encoder = resemblyzer_encoder
    wav, sr = load_clip(relative, rate)
    if seconds is not None:  # shorter than one 1.6 s partial: exercises zero padding
        wav = wav[: int(seconds * sr)]
    reference = reference_encoder.embed_utterance(
        resemblyzer.preprocess_wav(wav, source_sr=sr), rate=RESEMBLYZER_RATE
    )
    ours = encoder.embed(wav, sr)
    assert ours.shape == (256,) and ours.dtype == np.float32
    assert abs(np.linalg.norm(ours) - 1.0) < 1e-5
    assert encoder.similarity(ours, reference) > 0.9999


def test_mel_features_match_librosa(resemblyzer_encoder, load_clip):
    resemblyzer, _ = resemblyzer_encoder  # resemblyzer's own mel function (librosa inside)
    wav, _ = load_clip(CLIPS[0][0])
    wav = wav[: 3 * 16_000 + 77]  # an odd length, to check the frame count too
    reference = resemblyzer.wav_to_mel_spectrogram(wav)
    ours = mel_spectrogram(wav)
    assert ours.shape == reference.shape
    assert np.max(np.abs(ours - reference)) <= 1e-5 * reference.max()


def test_filterbank_matches_librosa():
    librosa = import_or_fail_in_ci("librosa", "the eval extra")
    reference = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40)
    np.testing.assert_allclose(mel_filterbank(16_000, 400, 40), reference, rtol=0, atol=1e-8)


def test_partial_slices_match_resemblyzer(resemblyzer_encoder):
    _, reference_encoder = resemblyzer_encoder
    for n_samples in [1, 479, 16_000, 25_599, 25_600, 30_000, 38_400, 39_999, 96_000, 225_360]:
        _, reference = reference_encoder.compute_partial_slices(n_samples, RESEMBLYZER_RATE, 0.75)
        assert partial_slices(n_samples) == reference, n_samples


# ---- (2) checkpoint formats -----------------------------------------------------------------


def test_rtvc_checkpoint_and_bare_state_dict_load(encoder, state_dict, tmp_path, load_clip):
    rtvc = tmp_path / "encoder.pt"
    torch.save({"step": 1, "model_state": state_dict, "optimizer_state": None}, rtvc)
    bare = tmp_path / "bare.pt"
    torch.save(state_dict, bare)

    wav, sr = load_clip(CLIPS[1][0])
    expected = encoder.embed(wav, sr)
    for path in (rtvc, bare):
        loaded = SpeakerEncoder(path)  # load_state_dict(strict=True) inside
        np.testing.assert_array_equal(loaded.embed(wav, sr), expected)


def test_default_weights_are_resemblyzers_file():
    path = default_weights_path()
    assert path.name == "pretrained.pt" and path.parent.name == "resemblyzer"
    assert path.is_file()


# ---- (3) one-line errors --------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert isinstance(exc.value, StudioError)
    assert "\n" not in message and len(message) < 300
    return message


def test_missing_lfs_and_truncated_files_fail_clearly(tmp_path):
    with pytest.raises(EncoderWeightsError) as exc:
        load_encoder_weights(tmp_path / "nope.pt")
    assert "not found" in _one_line(exc)

    pointer = tmp_path / "lfs.pt"
    pointer.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
        "size 17090379\n"
    )
    with pytest.raises(EncoderWeightsError) as exc:
        load_encoder_weights(pointer)
    assert "Git LFS pointer" in _one_line(exc)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(default_weights_path().read_bytes()[:65_536])
    with pytest.raises(EncoderWeightsError) as exc:
        SpeakerEncoder(truncated)
    assert "truncated" in _one_line(exc)


def test_wrong_shape_names_first_mismatching_key(state_dict, tmp_path):
    broken = dict(state_dict)
    broken["lstm.weight_hh_l1"] = torch.zeros(1024, 128)
    broken["linear.weight"] = torch.zeros(128, 256)  # later in key order: must not be named
    path = tmp_path / "broken.pt"
    torch.save({"step": 1, "model_state": broken, "optimizer_state": None}, path)
    with pytest.raises(EncoderWeightsError) as exc:
        SpeakerEncoder(path)
    message = _one_line(exc)
    assert "'lstm.weight_hh_l1'" in message and "(1024, 128)" in message
    assert "linear.weight" not in message

    missing = {k: v for k, v in state_dict.items() if k != "similarity_bias"}
    torch.save(missing, path)
    with pytest.raises(EncoderWeightsError) as exc:
        load_encoder_weights(path)
    assert "missing key 'similarity_bias'" in _one_line(exc)

    torch.save({**state_dict, "lstm.weight_ih_l3": torch.zeros(1)}, path)
    with pytest.raises(EncoderWeightsError) as exc:
        load_encoder_weights(path)
    assert "unexpected key 'lstm.weight_ih_l3'" in _one_line(exc)


def test_bad_audio_raises_audio_error(encoder):
    with pytest.raises(AudioError, match="silent"):
        encoder.embed(np.zeros(16_000, dtype=np.float32), 16_000)
    with pytest.raises(AudioError, match="mono"):
        encoder.embed(np.zeros((2, 16_000), dtype=np.float32), 16_000)
    with pytest.raises(AudioError, match="sample_rate is required"):
        encoder.embed(np.zeros(16_000, dtype=np.float32))


def test_batch_error_names_the_clip(encoder, load_clip):
    wav, sr = load_clip(CLIPS[2][0])
    with pytest.raises(AudioError, match="clip 1: audio is empty"):
        encoder.embed_batch([wav, np.zeros(0, dtype=np.float32)], sr)


# ---- (4) speaker discrimination -------------------------------------------------------------


def test_same_speaker_scores_higher_than_other_speaker(encoder, load_clip):
    wav, sr = load_clip(SAME_SPEAKER)
    other, other_sr = load_clip(OTHER_SPEAKER)
    half = len(wav) // 2
    first, second = encoder.embed_batch([wav[:half], wav[half:]], sr)
    stranger = encoder.embed(other, other_sr)

    same = encoder.similarity(first, second)
    different = max(encoder.similarity(first, stranger), encoder.similarity(second, stranger))
    # Measured: same 0.93, different 0.52 (GE2E embeddings are >= 0, so unrelated voices
    # still score ~0.5).
    assert same > 0.85
    assert different < 0.7
    assert same - different > 0.25


# ---- (5) batching and the torch path --------------------------------------------------------


def test_embed_batch_equals_per_clip_embed(encoder, load_clip):
    clips = [load_clip(relative, rate) for relative, rate in CLIPS]
    batch = encoder.embed_batch([wav for wav, _ in clips], [sr for _, sr in clips])
    single = np.stack([encoder.embed(wav, sr) for wav, sr in clips])
    assert batch.shape == (len(clips), 256) and batch.dtype == np.float32
    assert np.max(np.abs(batch - single)) < 1e-5

    class Clip:  # any object with .samples / .sample_rate, like deepfake_studio.audio.Audio
        def __init__(self, samples: np.ndarray, sample_rate: int) -> None:
            self.samples, self.sample_rate = samples, sample_rate

    objects = encoder.embed_batch([Clip(wav, sr) for wav, sr in clips])
    assert np.max(np.abs(objects - single)) < 1e-5
    from deepfake_studio import audio

    wav, sr = clips[0]
    np.testing.assert_array_equal(encoder.embed(audio.Audio(wav, sr)), single[0])
    assert encoder.embed_batch([]).shape == (0, 256)


def test_partials_and_preprocess_flag(encoder, load_clip):
    wav, sr = load_clip(CLIPS[0][0])
    partials = encoder.embed_partials(wav, sr)
    assert partials.ndim == 2 and partials.shape[1] == 256 and len(partials) > 5
    mean = partials.mean(0)
    np.testing.assert_allclose(encoder.embed(wav, sr), mean / np.linalg.norm(mean), atol=1e-6)

    prepared = encoder.prepare(wav, sr)
    np.testing.assert_allclose(
        encoder.embed(prepared, 16_000, preprocess=False), encoder.embed(wav, sr), atol=1e-6
    )


def test_torch_path_matches_and_is_differentiable(encoder, load_clip):
    wav, sr = load_clip(CLIPS[1][0])
    prepared = encoder.prepare(wav, sr)
    expected = encoder.embed(prepared, 16_000, preprocess=False)

    tensor = torch.from_numpy(prepared.astype(np.float32)).requires_grad_(True)
    embedding = encoder.embed_wav_torch(tensor)
    assert embedding.shape == (256,)
    assert encoder.similarity(embedding.detach().numpy(), expected) > 0.99999
    embedding.sum().backward()
    assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
    assert tensor.grad.abs().sum() > 0

    mels = torch.from_numpy(encoder.partial_mels(prepared))
    with torch.inference_mode():
        partials = encoder.embed_mel_torch(mels)
    assert partials.shape == (len(mels), 256)


def test_config_defaults():
    config = EncoderConfig()
    assert (config.n_fft, config.hop_length, config.partial_step) == (400, 160, 80)

"""Griffin-Lim fallback vocoder and the SV2TTS mel format it inverts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_studio.audio import load_audio
from deepfake_studio.synthesizer.tacotron import AudioConfig
from deepfake_studio.vocoder.audio import (
    de_emphasis,
    decode_mu_law,
    denormalize_db,
    encode_mu_law,
    mel_basis,
    melspectrogram,
    preemphasis,
)
from deepfake_studio.vocoder.griffin_lim import GriffinLimConfig, GriffinLimVocoder, griffin_lim
from tests.conftest import import_or_fail_in_ci

AUDIO = AudioConfig()


def test_audio_config_is_rtvcs() -> None:
    assert (AUDIO.sample_rate, AUDIO.n_fft, AUDIO.hop_length, AUDIO.win_length) == (
        16000, 800, 200, 800)  # fmt: skip
    assert (AUDIO.n_mels, AUDIO.fmin, AUDIO.fmax, AUDIO.preemphasis) == (80, 55, 7600, 0.97)
    assert AUDIO.max_abs_value == 4.0


def test_mel_filterbank_equals_librosa() -> None:
    librosa = import_or_fail_in_ci("librosa", "the eval extra; not needed at run time")
    expected = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    np.testing.assert_allclose(mel_basis(AUDIO).numpy(), expected, atol=1e-7)


def test_emphasis_and_mu_law_invert_each_other() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, 4000)
    np.testing.assert_allclose(de_emphasis(preemphasis(x, 0.97), 0.97), x, atol=1e-10)
    np.testing.assert_allclose(decode_mu_law(encode_mu_law(x, 512), 512), x, atol=1e-10)
    assert decode_mu_law(np.array([-1.0, 0.0, 1.0]), 512).tolist() == [-1.0, 0.0, 1.0]


def _mel_magnitude(mel: np.ndarray) -> np.ndarray:
    db = denormalize_db(torch.from_numpy(mel), AUDIO) + AUDIO.ref_level_db
    return (10 ** (db / 20)).numpy()


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray) -> float:
    """‖|M| - |M̂|‖ / ‖|M|‖ on mel magnitudes (0 = identical)."""
    frames = min(reference.shape[1], estimate.shape[1])
    a, b = _mel_magnitude(reference[:, :frames]), _mel_magnitude(estimate[:, :frames])
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> np.ndarray:
    wav = load_audio(speech_dir / "ljspeech/LJ/LJ001-0002.flac", 16000).samples  # 1.9 s
    return wav / np.abs(wav).max() * 0.9  # RTVC rescales training audio to a 0.9 peak


def test_mel_of_a_real_clip_is_in_range(clip: np.ndarray) -> None:
    mel = melspectrogram(clip)
    assert mel.dtype == np.float32 and mel.shape == (80, len(clip) // 200 + 1)
    assert -4.0 <= mel.min() < -3.0 and 1.0 < mel.max() <= 4.0  # measured: -4.0, 1.96


def test_griffin_lim_recovers_the_mel_of_a_real_clip(clip: np.ndarray) -> None:
    mel = melspectrogram(clip)
    # power=1 inverts the magnitudes as they are (RTVC's 1.5 deliberately sharpens them, so
    # its output's mel is not meant to equal the input). Measured on this clip: spectral
    # convergence 0.52 with random phase, 0.08 after 30 iterations.
    exact = replace(GriffinLimConfig(), iterations=30, power=1.0)
    wav = griffin_lim(mel, AUDIO, exact)
    assert wav.dtype == np.float32 and len(wav) == (mel.shape[1] - 1) * 200
    random_phase = griffin_lim(mel, AUDIO, replace(exact, iterations=0))
    assert spectral_convergence(mel, melspectrogram(random_phase)) > 0.4
    assert spectral_convergence(mel, melspectrogram(wav)) < 0.15


def test_griffin_lim_vocoder_defaults_run(clip: np.ndarray) -> None:
    mel = melspectrogram(clip)[:, :40]
    wav = GriffinLimVocoder(config=replace(GriffinLimConfig(), iterations=5))(mel)
    assert wav.shape == (39 * 200,) and np.isfinite(wav).all() and np.abs(wav).max() > 0

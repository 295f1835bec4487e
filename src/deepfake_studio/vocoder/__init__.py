"""Stage 3 of SV2TTS: vocoders that turn the synthesizer's mel spectrogram into a waveform.

    WaveRNNVocoder(model)(mel)   # neural, needs RTVC's vocoder.pt; ~natural speech
    GriffinLimVocoder()(mel)     # no weights; phase reconstruction, robotic but intelligible

Both take an (80, T) mel in the SV2TTS format (`synthesizer.tacotron.AudioConfig`, values in
[-4, 4]) and return float32 samples at 16 kHz.
"""

from deepfake_studio.vocoder.griffin_lim import GriffinLimConfig, GriffinLimVocoder, griffin_lim
from deepfake_studio.vocoder.wavernn import (
    WaveRNN,
    WaveRNNConfig,
    WaveRNNVocoder,
    fold_with_overlap,
    xfade_and_unfold,
)

__all__ = [
    "GriffinLimConfig",
    "GriffinLimVocoder",
    "WaveRNN",
    "WaveRNNConfig",
    "WaveRNNVocoder",
    "fold_with_overlap",
    "griffin_lim",
    "xfade_and_unfold",
]

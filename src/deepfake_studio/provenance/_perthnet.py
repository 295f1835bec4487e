"""PerthNet ("implicit") network, re-declared so its bundled weights load without torchaudio.

The architecture below is transcribed from resemble-perth 1.0.1
(``perth/perth_net/perth_net_implicit/model/``, ``audio_processor.py``, ``utils.py``); only the
inference path is kept, and the STFT is called through ``torch.stft``/``torch.istft`` directly.
Why not import ``perth.PerthImplicitWatermarker``: its audio front end imports ``torchaudio``,
and the only torchaudio on PyPI (2.11.0, a CUDA build) fails to load next to this project's
``torch==2.13.0+cpu`` (``libc10_cuda.so`` missing); perth then silently sets
``PerthImplicitWatermarker = None``. Its loader also imports ``pkg_resources``, prints to stdout
and calls ``mkdir`` inside site-packages. The weights still come from the resemble-perth wheel.

Original code: Copyright (c) 2025 Resemble AI, MIT License:

    Permission is hereby granted, free of charge, to any person obtaining a copy of this
    software and associated documentation files (the "Software"), to deal in the Software
    without restriction, including without limitation the rights to use, copy, modify, merge,
    publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
    to whom the Software is furnished to do so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all copies or
    substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
    INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
    PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
    FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
    OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
    DEALINGS IN THE SOFTWARE.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch alias)
from torch import nn

# Hyper-parameters of the bundled checkpoint (pretrained/implicit/hparams.yaml).
SAMPLE_RATE = 32_000
N_FFT = 2048
HOP = 320
MAG_MIN = 1e-9  # stft_magnitude_min
MAX_WMARK_FREQ = 2000.0  # the watermark lives in 0-2 kHz
HIDDEN = 256
HEADROOM_DB = 15.0
SUBBAND = round((N_FFT // 2 + 1) * MAX_WMARK_FREQ / (SAMPLE_RATE / 2))  # 128 bins
CHECKPOINT = ("perth_net", "pretrained", "implicit", "perth_net_250000.pth.tar")
CHECKPOINT_STEP = 250_000
_MIN_DB = 20.0 * torch.log10(torch.tensor(MAG_MIN)).item()  # -180 dB


class _Conv(nn.Module):
    def __init__(self, i: int, o: int, k: int, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(i, o, k, padding=(k - 1) // 2)
        self.act = nn.LeakyReLU() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.act(x) if self.act is not None else x


def _stack(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(
        _Conv(i, HIDDEN, 1),
        *[_Conv(HIDDEN, HIDDEN, 7) for _ in range(5)],
        _Conv(HIDDEN, o, 1, act=False),
    )


def magmask(magspec: torch.Tensor, p: float = 0.05) -> torch.Tensor:
    """(B, F, T) -> (B, T): frames whose summed level exceeds 5 % of the loudest frame's."""
    s = magspec.sum(dim=1)
    thresh = s.max(dim=1).values * p
    return (s > thresh[:, None]).float()


class Encoder(nn.Module):
    """Adds the watermark as a residual on the 0-2 kHz log-magnitude bins of loud frames."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _stack(SUBBAND, SUBBAND)

    def forward(self, magspec: torch.Tensor) -> torch.Tensor:
        magspec = magspec.clone()
        mask = magmask(magspec)[:, None]
        magspec[:, :SUBBAND] += self.layers(magspec[:, :SUBBAND]) * mask
        return magspec


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (x * m).sum(dim=2) / m.sum(dim=2)


class Decoder(nn.Module):
    """Three time scales (x1.25, x1, x0.75), each a per-frame score and an attention logit."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_layers = _stack(SUBBAND, 2)
        self.normal_layers = _stack(SUBBAND, 2)
        self.fast_layers = _stack(SUBBAND, 2)

    def forward(self, magspec: torch.Tensor) -> torch.Tensor:
        mask = magmask(magspec)[:, None]
        sub = magspec[:, :SUBBAND]
        t = sub.shape[2]
        marks, attns = [], []
        for layers, scale in (
            (self.slow_layers, 1.25),
            (self.normal_layers, 1.0),
            (self.fast_layers, 0.75),
        ):
            x = sub
            if scale != 1.0:
                x = F.interpolate(sub, size=int(t * scale), mode="linear", align_corners=True)
            out = layers(x)
            m = F.interpolate(mask, size=out.shape[2], mode="nearest")
            attns.append(_masked_mean(out[:, :1], m))
            marks.append(_masked_mean(out[:, 1:], m))
        attn = F.softmax(torch.cat(attns, dim=1), dim=1)
        return (torch.cat(marks, dim=1) * attn).sum(dim=1)  # (B,) ~0 clean, ~1 watermarked


class PerthNet(nn.Module):
    """Encoder + decoder with the STFT front end (hann 2048, hop 320, centred, reflect pad)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def to_magphase(self, signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = torch.stft(
            signal, N_FFT, HOP, N_FFT, self.window,
            center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
        )  # fmt: skip
        mag = 20.0 * torch.log10(spec.abs().clamp(min=MAG_MIN))
        return (mag - _MIN_DB) / (-_MIN_DB + HEADROOM_DB), torch.angle(spec)

    def to_signal(self, mag: torch.Tensor, phase: torch.Tensor, length: int) -> torch.Tensor:
        db = mag * (-_MIN_DB + HEADROOM_DB) + _MIN_DB
        spec = 10.0 ** (db / 20).clamp(max=10) * torch.exp(1j * phase)
        return torch.istft(
            spec, N_FFT, HOP, N_FFT, self.window, center=True, normalized=False, onesided=True,
            length=length,
        )  # fmt: skip

    @torch.inference_mode()
    def embed(self, signal: torch.Tensor) -> torch.Tensor:
        """Watermark a 1-D 32 kHz signal; same length."""
        mag, phase = self.to_magphase(signal)
        return self.to_signal(self.encoder(mag[None])[0], phase, signal.shape[-1])

    @torch.inference_mode()
    def score(self, signal: torch.Tensor) -> tuple[float, int]:
        """Decoder output (unclipped) and the number of frames it averaged over."""
        mag, _ = self.to_magphase(signal)
        frames = int(magmask(mag[None]).sum().item())
        if frames == 0:  # silence: the masked mean would divide by zero
            return 0.0, 0
        return float(self.decoder(mag[None])[0].item()), frames


def checkpoint_path() -> Path:
    """The weights file inside the installed resemble-perth package, found without importing it
    (importing ``perth`` pulls in pkg_resources and, when present, a broken torchaudio)."""
    spec = importlib.util.find_spec("perth")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the resemble-perth package is not installed")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*CHECKPOINT)


def load(path: Path | None = None) -> PerthNet:
    """Build the network and load the bundled weights (strictly: every tensor must match)."""
    path = path or checkpoint_path()
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no pickle code execution
    state = {k: v for k, v in ckpt["model"].items() if not k.startswith("ap.")}  # STFT buffers
    net = PerthNet()
    net.load_state_dict(state, strict=True)
    return net.eval()

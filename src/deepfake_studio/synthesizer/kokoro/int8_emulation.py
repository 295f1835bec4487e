"""The int8 ONNX's run-time activation quantisation, emulated on request.

onnxruntime runs Kokoro's int8 graph with uint8 activations quantised per tensor at run time
(DynamicQuantizeLinear before each ConvInteger / MatMulInteger, and inside
DynamicQuantizeLSTM). The PyTorch model declares those layers with the classes here; they
behave as plain float layers unless `emulate_onnx_int8` is set
(`KokoroModel.set_onnx_int8_emulation`). Off by default: the emulation matched every layer but
did not explain the paths' difference (a sign error in the harmonic source did), and its
rounding compounds over ALBERT's 12 repeats (benchmarks/onnx_int8_emulation.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import Tensor, nn


def fake_quantize_uint8(x: Tensor) -> Tensor:
    """x rounded as onnxruntime's DynamicQuantizeLinear and dequantised, per batch item.

    uint8, one scale per tensor: scale = (max(0, max x) − min(0, min x)) / 255, zero point
    round(−min / scale), values round(x / scale) + zero point clipped to 0..255, all rounding
    half to even (torch.round). The ONNX runs one utterance, so one scale per batch item here.
    Straight-through: the value is the rounded one, the gradient that of the identity.
    """
    x32 = x.detach().float()
    dims = tuple(range(1, x.dim()))
    low = x32.amin(dim=dims, keepdim=True).clamp(max=0.0)
    high = x32.amax(dim=dims, keepdim=True).clamp(min=0.0)
    scale = (high - low) / 255.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all zero: ORT uses 1
    zero_point = torch.round(-low / scale).clamp(0.0, 255.0)
    q = (torch.round(x32 / scale) + zero_point).clamp(0.0, 255.0)
    rounded = ((q - zero_point) * scale).to(x.dtype)
    if not x.requires_grad:
        return rounded
    return rounded + (x - x.detach())


class Int8Linear(nn.Linear):
    """A Linear the ONNX runs as MatMulInteger: its input is quantised to uint8 at run time."""

    emulate_onnx_int8: bool = False

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(fake_quantize_uint8(x) if self.emulate_onnx_int8 else x)


class Int8Conv1d(nn.Conv1d):
    """A Conv1d the ONNX runs as ConvInteger: its input is quantised to uint8 at run time.

    (The ONNX also rounds the bias down to a multiple of input scale × weight scale: at most
    one step of the integer accumulator, not emulated.)"""

    emulate_onnx_int8: bool = False

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(fake_quantize_uint8(x) if self.emulate_onnx_int8 else x)


class Int8LSTM(nn.LSTM):
    """A bidirectional one-layer LSTM the ONNX runs as DynamicQuantizeLSTM.

    onnxruntime's kernel quantises the matrix of each GEMM to uint8 (per tensor, as
    DynamicQuantizeLinear): the whole input sequence once per direction, and the previous
    hidden state at every step; gates and cell stay float. Emulated with an explicit loop over
    the steps (slower than the fused float LSTM, so only when asked).
    """

    emulate_onnx_int8: bool = False

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None):  # type: ignore[override]
        if not self.emulate_onnx_int8 or hx is not None:
            return super().forward(x, hx)
        if not (self.batch_first and self.bidirectional and self.num_layers == 1):
            raise ValueError("Int8LSTM emulates only the one-layer bidirectional batch-first LSTM")
        x_q = fake_quantize_uint8(x)
        outputs = [
            self._direction(
                x_q,
                getattr(self, f"weight_ih_l0{s}"),
                getattr(self, f"weight_hh_l0{s}"),
                getattr(self, f"bias_ih_l0{s}") + getattr(self, f"bias_hh_l0{s}"),
                reverse,
            )
            for s, reverse in (("", False), ("_reverse", True))
        ]
        return torch.cat(outputs, dim=-1), None

    @staticmethod
    def _direction(x_q: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, reverse: bool) -> Tensor:
        input_gates = F.linear(x_q, w_ih, bias)  # [B, T, 4h], every step at once
        batch, steps = x_q.shape[0], x_q.shape[1]
        hidden = w_hh.shape[1]
        h = input_gates.new_zeros(batch, hidden)
        c = input_gates.new_zeros(batch, hidden)
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        out: list[Tensor] = [h] * steps
        for t in order:
            gates = input_gates[:, t] + F.linear(fake_quantize_uint8(h), w_hh)
            i, f, g, o = gates.chunk(4, dim=-1)  # PyTorch's gate order
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            out[t] = h
        return torch.stack(out, dim=1)

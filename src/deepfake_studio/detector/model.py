"""SpecRNet-lite: a small CNN that tells synthetic speech from real, read top to bottom.

After SpecRNet (Kawa et al., 2022): LFCC "image" → residual 2-D conv blocks, each followed by
max-pooling and filter-wise feature-map scaling (FMS, from RawNet2: a per-channel sigmoid
gate computed from the channel's mean, applied as x·s + s) → a GRU over time → one logit.

    (B, 1, 160, T) BN, 3×3 conv stem with stride 2 (c0), SELU, max-pool 2 → (B, c0, 40, T/4)
                   ResBlock(c0→c1) + FMS                     max-pool 2  → (B, c1, 20, T/8)
                   ResBlock(c1→c2) + FMS                     max-pool 2  → (B, c2, 10, T/16)
                   ResBlock(c2→c3) + FMS                     max-pool 2  → (B, c3,  5, T/32)
                   frequency folded into channels: (B, T/32, c3·5) → GRU → mean over time
                   → dropout → linear → logit (> 0: synthetic)

SpecRNet runs its first block at full resolution; here the stem strides and pools first, which
cuts the compute about 15-fold (33 M multiply-adds per 3 s window). That is what lets it train
in a session on 2 shared CPU cores; the price is coarser time-frequency detail in the first
block. With 160 LFCC bins five halvings leave 5 bands; fewer than 64 bins would leave none.
Any number of frames ≥ 32 works; the detector feeds 3 s windows (301 frames).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes (stored with the weights; the defaults are the shipped model's)."""

    n_lfcc: int = 160  # FeatureConfig.n_lfcc
    channels: tuple[int, int, int, int] = (16, 16, 32, 48)  # stem, block 1, 2, 3
    gru_hidden: int = 64
    dropout: float = 0.3
    # One-class head (OC-softmax, Zhang et al. 2021): an embedding of this size scored by its
    # cosine to a learnt "real speech" direction; 0 = the plain linear head (a BCE logit).
    one_class_dim: int = 0
    one_class_scale: float = 20.0  # α: cosine → logit
    one_class_margins: tuple[float, float] = (0.9, 0.2)  # cosine real must reach, spoof stay under

    @property
    def gru_input(self) -> int:
        return self.channels[-1] * (self.n_lfcc // 32)


class FMS(nn.Module):
    """Filter-wise feature-map scaling: each channel gated by a sigmoid of its own mean."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc(x.mean(dim=(2, 3))))[:, :, None, None]
        return x * s + s  # the + s keeps a path open when the gate is near 0 (RawNet2)


class ResBlock(nn.Module):
    """BN → SELU → conv3×3 → BN → SELU → conv3×3, plus a 1×1 projection when widths differ."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.bn1(x)))
        h = self.conv2(self.act(self.bn2(h)))
        return h + self.skip(x)


class SpecRNetLite(nn.Module):
    """(B, n_lfcc, T) LFCCs → (B,) logits; positive means synthetic."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ModelConfig()
        c0, c1, c2, c3 = c.channels
        self.input_bn = nn.BatchNorm2d(1)  # LFCCs are in dB-like units: normalise them here
        self.stem = nn.Sequential(
            nn.Conv2d(1, c0, 3, stride=2, padding=1), nn.BatchNorm2d(c0), nn.SELU()
        )
        self.blocks = nn.ModuleList([ResBlock(c0, c1), ResBlock(c1, c2), ResBlock(c2, c3)])
        self.gates = nn.ModuleList([FMS(c1), FMS(c2), FMS(c3)])
        self.pool = nn.MaxPool2d(2)
        self.out_bn = nn.BatchNorm2d(c3)
        self.act = nn.SELU()
        self.gru = nn.GRU(c.gru_input, c.gru_hidden, batch_first=True)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.gru_hidden, c.one_class_dim or 1)
        if c.one_class_dim:
            self.real_direction = nn.Parameter(torch.randn(c.one_class_dim))

    def forward(self, lfcc: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(lfcc.unsqueeze(1))  # (B, 1, F, T)
        x = self.pool(self.stem(x))  # (B, c0, F/4, T/4)
        for block, gate in zip(self.blocks, self.gates, strict=True):
            x = gate(self.pool(block(x)))  # halve F and T after every block
        x = self.act(self.out_bn(x))  # (B, c3, F/32, T/32)
        b, ch, f, t = x.shape
        x = x.permute(0, 3, 1, 2).reshape(b, t, ch * f)  # one vector per time step
        h, _ = self.gru(x)  # (B, T/32, hidden)
        out = self.head(self.dropout(h.mean(dim=1)))
        if not self.config.one_class_dim:
            return out.squeeze(-1)
        return self.cosine_to_logit(self.real_cosine(out))

    def real_cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        """Cosine between embeddings and the real-speech direction (1: as real as it gets)."""
        return nn.functional.normalize(embedding, dim=-1) @ nn.functional.normalize(
            self.real_direction, dim=0
        )

    def cosine_to_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        """α·(midpoint of the margins − cosine): > 0 means synthetic, as for the BCE head."""
        real_margin, spoof_margin = self.config.one_class_margins
        return self.config.one_class_scale * ((real_margin + spoof_margin) / 2 - cosine)


def one_class_loss(
    logits: torch.Tensor, is_spoof: torch.Tensor, config: ModelConfig, spoof_weight: float = 1.0
) -> torch.Tensor:
    """OC-softmax on the logits of a one-class head: real speech must come within cosine
    m_real of the real direction, spoofs only stay below m_spoof in any direction, so real
    speech is pulled together while fakes are merely pushed away (which is what should carry
    over to fakes never seen). softplus(α(m_real − cos)) for real, softplus(α(cos − m_spoof))
    for spoofs; on the logit α(mid − cos) these are softplus(±logit + α(m_real − m_spoof)/2)."""
    real_margin, spoof_margin = config.one_class_margins
    shift = config.one_class_scale * (real_margin - spoof_margin) / 2
    signed = torch.where(is_spoof > 0, shift - logits, shift + logits)
    weights = torch.where(is_spoof > 0, spoof_weight, 1.0)
    return (weights * nn.functional.softplus(signed)).sum() / weights.sum()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_onnx_weights(model: SpecRNetLite, path: str | os.PathLike[str]) -> SpecRNetLite:
    """Load an exported detector.onnx back into `model` (same ModelConfig), to fine-tune
    weights that exist only as ONNX (the shipped ones).

    Initialisers named like the torch parameters are copied as they are. The exporter folded
    four BatchNorms into the convolution before them (the stem's, and each block's `bn2` into
    its `conv1`) and renamed those convolutions: they are taken in graph order, and the folded
    BatchNorms become identities. The GRU's ONNX gate order (z, r, h) is put back into torch's
    (r, z, n). Train such a model with its BatchNorm statistics frozen (`freeze_batchnorm`):
    batch statistics would undo the folding.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    state = model.state_dict()
    loaded = {name: weights[name] for name in state if name in weights}
    folded = [("stem.0", "stem.1")] + [
        (f"blocks.{k}.conv1", f"blocks.{k}.bn2") for k in range(len(model.blocks))
    ]
    # The renamed convolutions, in the order the graph uses them.
    renamed = [
        node.input[1:3]
        for node in graph.node
        if node.op_type == "Conv" and node.input[1] in weights and node.input[1] not in state
    ]
    if len(renamed) != len(folded):
        raise ValueError(f"{path}: {len(renamed)} folded convolutions, expected {len(folded)}")
    for (conv, bn), (w, b) in zip(folded, renamed, strict=True):
        loaded[f"{conv}.weight"], loaded[f"{conv}.bias"] = weights[w], weights[b]
        eps = next(m.eps for n, m in model.named_modules() if n == bn)  # type: ignore[union-attr]
        size = state[f"{bn}.weight"].shape
        loaded[f"{bn}.weight"], loaded[f"{bn}.bias"] = torch.ones(size), torch.zeros(size)
        loaded[f"{bn}.running_mean"] = torch.zeros(size)
        loaded[f"{bn}.running_var"] = torch.full(size, 1.0 - eps)  # so that √(var + eps) = 1
    gru = [n for n in graph.node if n.op_type == "GRU"]
    if len(gru) != 1:
        raise ValueError(f"{path}: {len(gru)} GRU nodes, expected 1")
    w, r, b = (weights[name][0] for name in gru[0].input[1:4])
    h = model.config.gru_hidden

    def torch_order(x: torch.Tensor) -> torch.Tensor:  # (z, r, h) → (r, z, n)
        return torch.cat([x[h : 2 * h], x[:h], x[2 * h :]])

    loaded["gru.weight_ih_l0"], loaded["gru.weight_hh_l0"] = torch_order(w), torch_order(r)
    loaded["gru.bias_ih_l0"], loaded["gru.bias_hh_l0"] = (
        torch_order(b[: 3 * h]),
        torch_order(b[3 * h :]),
    )
    missing = [n for n in state if n not in loaded and not n.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path} has no weights for {', '.join(missing)}")
    for name, value in loaded.items():
        if tuple(value.shape) != tuple(state[name].shape):
            raise ValueError(
                f"{path}: {name} is {tuple(value.shape)}, expected {tuple(state[name].shape)}"
            )
    model.load_state_dict({**state, **{k: v.to(state[k].dtype) for k, v in loaded.items()}})
    return model


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers back to their running statistics (call after `model.train()`)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()

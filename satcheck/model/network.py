"""ChangeNet: a small siamese change-segmentation network in plain torch.

Both dates go through one encoder (shared weights).  At each of three
scales the two feature maps are fused as |a - b| next to the later date's
features (the difference says *whether* something changed, the later
features say *into what*).  A light top-down decoder brings the fused
features back to half resolution, where a 1×1 head gives three logits per
pixel, one independent sigmoid per change class: building, hardened ground
(yards, pads, roads) and excavation.  Independent, so that a source whose
labels speak of one class only (LEVIR-CD: buildings) trains that class and
leaves the others alone (:mod:`satcheck.model.losses`).  Output is upsampled
to the input size, so any input size works (multiples of 16 are fastest).

Input channels per date: R, G, B, NIR and a constant plane that says
whether NIR is real (1) or absent (0, NIR plane zero).  One set of weights
therefore serves RGB orthophotos and four-band satellite tiles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from satcheck.model.runtime import IN_CHANNELS, LEGACY_OUTPUTS, TYPED_OUTPUTS

OUT_CHANNELS = 3  # one logit per class of TYPED_OUTPUTS (earlier weights: LEGACY_OUTPUTS)


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__(
            # Replicate padding: a uniform input gives a uniform output, so window borders leave no seams.
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False, padding_mode="replicate"),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True) if act else nn.Identity(),
        )


class DSBlock(nn.Module):
    """Depthwise-separable block with a residual where shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, stride, groups=cin)
        self.pw = ConvBN(cin, cout, 1, act=False)
        self.res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return F.relu(y + x if self.res else y, inplace=True)


class Encoder(nn.Module):
    def __init__(self, widths: tuple[int, int, int, int]):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(ConvBN(IN_CHANNELS, w0, 3, 2), DSBlock(w0, w0))               # 1/2
        self.s1 = nn.Sequential(DSBlock(w0, w1, 2), DSBlock(w1, w1))                              # 1/4
        self.s2 = nn.Sequential(DSBlock(w1, w2, 2), DSBlock(w2, w2))                              # 1/8
        self.s3 = nn.Sequential(DSBlock(w2, w3, 2), DSBlock(w3, w3), DSBlock(w3, w3))             # 1/16

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.stem(x)
        f1 = self.s1(f0)
        f2 = self.s2(f1)
        f3 = self.s3(f2)
        return [f0, f1, f2, f3]


class ChangeNet(nn.Module):
    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 64, 96), decoder: int = 32,
                 outputs: tuple[str, ...] = TYPED_OUTPUTS):
        super().__init__()
        if tuple(outputs) not in (TYPED_OUTPUTS, LEGACY_OUTPUTS):
            raise ValueError(f"outputs {outputs!r}: expected {TYPED_OUTPUTS} or {LEGACY_OUTPUTS}")
        self.outputs = tuple(outputs)
        self.widths = tuple(widths)
        self.decoder_width = decoder
        self.encoder = Encoder(self.widths)
        self.fuse = nn.ModuleList(ConvBN(2 * w, decoder, 1) for w in self.widths)
        self.smooth = nn.ModuleList(DSBlock(decoder, decoder) for _ in self.widths[1:-1])
        self.head = nn.Sequential(DSBlock(decoder, decoder), nn.Conv2d(decoder, OUT_CHANNELS, 1))

    def config(self) -> dict:
        return {"widths": list(self.widths), "decoder": self.decoder_width, "outputs": list(self.outputs)}

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        h, w = after.shape[-2:]
        n = before.shape[0]
        feats = self.encoder(torch.cat([before, after], 0))
        fused = [f(torch.cat([(x[:n] - x[n:]).abs(), x[n:]], 1)) for f, x in zip(self.fuse, feats)]
        y = fused[-1]
        for i in range(len(fused) - 2, -1, -1):
            y = F.interpolate(y, size=fused[i].shape[-2:], mode="bilinear", align_corners=False) + fused[i]
            if i > 0:
                y = self.smooth[i - 1](y)
        y = self.head(y)
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_megapixel(model: nn.Module, size: int = 512) -> float:
    """FLOPs (2 × multiply-adds) for one megapixel of image pair, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, IN_CHANNELS, size, size)
    was = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x, x)
    model.train(was)
    return fc.get_total_flops() / (size * size / 1e6)

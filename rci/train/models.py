"""MatchLite's two readers of a pair (torch; the `train` extra).

Student: the pair's maps (rci.match.pair_input: visual, audio and path similarity on a
query x reference time grid) read by a small CNN, pooled over each pair's own cells (max
and mean), joined with the side numbers; heads for copy-or-not, the copied fraction and
the copy's edit kinds (the ViSiL / DnS family of similarity-map readers).

Teacher: the same maps read by a wider CNN, and both videos' descriptors, one token per
grid row (query) and column (reference) with that row's or column's map statistics, read
by a transformer over the joined pair sequence (self-attention across the two videos is
their cross-attention); the same heads.
"""

from __future__ import annotations

import torch
from torch import nn

from rci.describe.descriptor import EMBEDDING_DIM
from rci.match.pair_input import CHANNELS, SIDE_FEATURES

NEG = -1e4  # stands for -inf in masked maxima; ONNX-safe, unlike inf * 0


def masked_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, 2 C) max and mean of (N, C, H, W) features over cells where mask (N, 1, H, W) is 1."""
    top = (x * mask + (mask - 1.0) * -NEG).amax(dim=(2, 3))
    mean = (x * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp(min=1.0)
    return torch.cat([top, mean], dim=1)


class MapReader(nn.Module):
    """Conv blocks over the maps, halving the grid between blocks; masked pooling at the end."""

    def __init__(self, *, channels: int, width: int, blocks: int) -> None:
        super().__init__()
        convs, c = [], channels
        for b in range(blocks):
            w = width * 2**b
            convs += [nn.Conv2d(c, w, 3, padding=1), nn.Conv2d(w, w, 3, padding=1)]
            c = w
        self.convs = nn.ModuleList(convs)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.out_features = 2 * c

    def forward(self, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Every convolution's output is masked, so padding cells stay 0 and a pair scores the
        # same alone or padded beside a larger one (as at a video's edge, conv padding is 0).
        x = maps * mask
        for n, conv in enumerate(self.convs):
            if n and n % 2 == 0:
                x, mask = self.pool(x), self.pool(mask)
            x = torch.relu(conv(x)) * mask
        return masked_pool(x, mask)


class Heads(nn.Module):
    """copy logit (N,), copied fraction logit (N,), edit kind logits (N, K) from (N, E)."""

    def __init__(self, *, embed: int, kinds: int) -> None:
        super().__init__()
        self.copy = nn.Linear(embed, 1)
        self.fraction = nn.Linear(embed, 1)
        self.kinds = nn.Linear(embed, kinds)

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.copy(e).squeeze(1), self.fraction(e).squeeze(1), self.kinds(e)


class Student(nn.Module):
    """MatchLite: maps (N, C, H, W), mask (N, 1, H, W), side (N, F) -> copy logit (N,),
    fraction logit (N,), kind logits (N, K), embedding (N, E)."""

    def __init__(self, *, kinds: int, width: int = 8, blocks: int = 2, embed: int = 32) -> None:
        super().__init__()
        self.reader = MapReader(channels=len(CHANNELS), width=width, blocks=blocks)
        self.embed = nn.Sequential(
            nn.Linear(self.reader.out_features + len(SIDE_FEATURES), embed), nn.ReLU()
        )
        self.heads = Heads(embed=embed, kinds=kinds)
        self.embed_features = embed

    def forward(self, maps, mask, side):
        e = self.embed(torch.cat([self.reader(maps, mask), side], dim=1))
        return (*self.heads(e), e)


class Served(nn.Module):
    """What the server runs: the student with its sigmoids inside the graph."""

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(self, maps, mask, side):
        copy, fraction, kinds, _ = self.student(maps, mask, side)
        return torch.sigmoid(copy), torch.sigmoid(fraction), torch.sigmoid(kinds)


def line_stats(maps: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Per row (dim=3: max over columns) or column (dim=2) of (N, C, H, W) maps: each
    channel's max and where it lies (0-1 along the other axis); (N, L, 2 C)."""
    x = maps * mask + (mask - 1.0) * -NEG
    top, where = x.max(dim=dim)
    size = mask.sum(dim=dim).clamp(min=1.0)
    out = torch.cat([top.clamp(min=-1.0), where.float() / size], dim=1)  # (N, 2C, L)
    return out.transpose(1, 2)


class Teacher(nn.Module):
    """maps, mask, side as the Student, with query tokens (N, H, D) and reference tokens
    (N, W, D) (mean descriptors of each grid row's / column's frames) -> as the Student."""

    def __init__(
        self,
        *,
        kinds: int,
        width: int = 32,
        blocks: int = 3,
        d_model: int = 128,
        layers: int = 3,
        heads: int = 4,
        embed: int = 128,
    ) -> None:
        super().__init__()
        c = len(CHANNELS)
        self.reader = MapReader(channels=c, width=width, blocks=blocks)
        self.frames = nn.Linear(EMBEDDING_DIM, d_model)
        self.stats = nn.Linear(2 * c + 1, d_model)  # line statistics and position
        self.kind = nn.Embedding(3, d_model)  # 0: summary token, 1: query, 2: reference
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=2 * d_model, dropout=0.1, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.embed = nn.Sequential(
            nn.Linear(d_model + self.reader.out_features + len(SIDE_FEATURES), embed), nn.ReLU()
        )
        self.heads = Heads(embed=embed, kinds=kinds)
        self.embed_features = embed

    def _tokens(self, frames, stats, valid, kind):
        position = torch.cumsum(valid, dim=1) / valid.sum(dim=1, keepdim=True).clamp(min=1.0)
        x = self.frames(frames) + self.stats(torch.cat([stats, position[..., None]], dim=2))
        return x + self.kind.weight[kind]

    def forward(self, maps, mask, side, query_frames, ref_frames):
        q_valid, r_valid = mask[:, 0, :, 0], mask[:, 0, 0, :]
        q = self._tokens(query_frames, line_stats(maps, mask, 3), q_valid, 1)
        r = self._tokens(ref_frames, line_stats(maps, mask, 2), r_valid, 2)
        summary = self.kind.weight[0].expand(len(maps), 1, -1)
        x = torch.cat([summary, q, r], dim=1)
        valid = torch.cat([torch.ones_like(q_valid[:, :1]), q_valid, r_valid], dim=1)
        x = self.encoder(x, src_key_padding_mask=valid < 0.5)
        e = self.embed(torch.cat([x[:, 0], self.reader(maps, mask), side], dim=1))
        return (*self.heads(e), e)

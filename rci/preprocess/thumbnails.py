"""Small JPEG pictures of the frames a video is fingerprinted from (the descriptor's content
crop), stored with a library at ingest: a reviewer sees the reference's frames without its
file (rci_client.report)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SIDE = 112  # pixels a side: the 224 x 224 descriptor input, halved
QUALITY = 70  # JPEG quality: about 3-5 kB a picture
MAX_BYTES = 32 * 1024  # what a library accepts for one picture (rci_library_add)
JPEG_START = b"\xff\xd8\xff"


def encode_thumbnails(frames: np.ndarray) -> list[bytes]:
    """One JPEG (SIDE x SIDE) per frame of (n, H, W, 3) uint8 RGB."""
    out = []
    for frame in frames:
        buffer = io.BytesIO()
        picture = Image.fromarray(np.ascontiguousarray(frame)).resize((SIDE, SIDE), Image.BILINEAR)
        picture.save(buffer, format="JPEG", quality=QUALITY)
        out.append(buffer.getvalue())
    return out

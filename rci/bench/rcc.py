"""Read files packed in Qt binary resource files (.rcc), as gcompris-qt-data ships its photos.

No maintained Python reader exists, and the format is small: a "qres" header gives the
offsets of a tree of 14- or 22-byte nodes (name, flags, then children or data), a names
table (UTF-16BE) and a data area (big-endian size, bytes; zlib or zstd when flagged).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

_COMPRESSED, _DIRECTORY, _ZSTD = 0x01, 0x02, 0x04


class RccError(ValueError):
    """Not a readable .rcc file."""


def iter_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """(resource path, file bytes) for every file in the .rcc at `path`; zstd entries skipped."""
    blob = Path(path).read_bytes()
    if blob[:4] != b"qres":
        raise RccError(f"{path}: no 'qres' header")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    if version not in (1, 2, 3):
        raise RccError(f"{path}: unsupported rcc version {version}")
    node_size = 14 if version == 1 else 22

    def name(node: int) -> str:
        offset = names + struct.unpack(">I", blob[tree + node * node_size :][:4])[0]
        (length,) = struct.unpack(">H", blob[offset : offset + 2])
        return blob[offset + 6 : offset + 6 + 2 * length].decode("utf-16-be")

    def walk(node: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        base = tree + node * node_size
        (flags,) = struct.unpack(">H", blob[base + 4 : base + 6])
        here = f"{prefix}/{name(node)}" if node else ""
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", blob[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, here)
            return
        (offset,) = struct.unpack(">I", blob[base + 10 : base + 14])
        start = data + offset
        (size,) = struct.unpack(">I", blob[start : start + 4])
        payload = blob[start + 4 : start + 4 + size]
        if flags & _ZSTD:
            return
        if flags & _COMPRESSED:
            payload = zlib.decompress(payload[4:])  # qCompress: 4-byte length, zlib stream
        yield here, payload

    yield from walk(0, "")

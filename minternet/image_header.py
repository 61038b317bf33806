"""What an image file's header says, read before decoding it (book chapter 1).

Decoding trusts the file: a 20000 x 20000 JPEG takes 1.2 GB before its size could be
checked, and a JPEG cut short decodes with a grey fill and only a warning on stderr. Here
the size comes from the header (a JPEG's SOF segment, a PNG's IHDR chunk) and a file counts
as complete only when it ends as its format says (a JPEG's EOI marker after its last scan, a
PNG's IEND chunk).
"""

from __future__ import annotations

JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
"""Start-of-frame markers (baseline, progressive, lossless ...), which carry the size."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF segment, walking the segments from the start."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        elif marker in JPEG_SOF:
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(
                data[i + 5 : i + 7], "big"
            )
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) px of a JPEG or PNG file's bytes from its header; None for any other
    file or a header cut short."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def is_complete(data: bytes) -> bool:
    """Whether a JPEG or PNG file's bytes end as the format says: a JPEG's EOI marker after
    the start of its last scan (stuffed scan data never holds one), a PNG's IEND chunk last."""
    if data[:2] == b"\xff\xd8":
        return data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda") >= 0
    return data[-8:-4] == b"IEND"

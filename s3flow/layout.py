"""How an object is cut into parts for a copy, so the destination's ETag can match.

S3's ETag of a multipart object is md5(md5(part 1) ... md5(part N)) + "-N": equal
bytes in an equal layout give an equal ETag. So by default a copy reproduces
the source's layout:

| source ETag         | size        | copied as                                        |
|---------------------|-------------|--------------------------------------------------|
| plain MD5           | <= 5 GiB    | one CopyObject (the ETag is kept)                |
| plain MD5           | > 5 GiB     | our parts (cannot happen on S3: PUT stops at 5 GiB) |
| "-N", part 1 size P | fits N x P  | N parts of P bytes (HEAD ?partNumber=1 gives P)  |
| "-N", anything else | any         | our parts                                        |

With keep_source_layout off, or where the layout cannot be reproduced, objects
above the multipart threshold are cut in our part size. Where the ETags then
differ (another layout, or a store whose ETag scheme differs, as SeaweedFS's
does), the copy is verified by comparing the MD5 of every range of both objects.
"""

from __future__ import annotations

from .config import MAX_PART_SIZE, MAX_PARTS, MAX_SINGLE_COPY, MIN_PART_SIZE, TransferConfig


def etag_parts(etag: str) -> int | None:
    """N of a multipart ETag "<hex>-N"; None for a single-part ETag."""
    _, dash, count = etag.rpartition("-")
    return int(count) if dash and count.isdigit() else None


def source_part_size(size: int, parts: int, first_part: int | None) -> int | None:
    """The source's part size if it describes a layout S3 accepts for this size."""
    if not first_part or not 1 <= parts <= MAX_PARTS:
        return None
    if parts > 1 and not MIN_PART_SIZE <= first_part <= MAX_PART_SIZE:
        return None
    if not (parts - 1) * first_part < size <= parts * first_part:
        return None
    return first_part


def single_copy(config: TransferConfig, size: int, etag: str) -> bool:
    """Whether to copy with one CopyObject rather than in parts.

    | source                       | size                    | part_copies | copied as      |
    |------------------------------|-------------------------|-------------|----------------|
    | any                          | > 5 GiB                 |             | parts          |
    | plain MD5 ETag (layout kept) | <= 5 GiB                |             | one CopyObject |
    | multipart ETag "-N"          | any (<= 5 GiB)          | always      | parts          |
    | multipart ETag, or plain with --ignore-source-layout | <= threshold | auto | one CopyObject |
    | the same                     | > threshold             | auto        | parts          |
    """
    if size > MAX_SINGLE_COPY:
        return False
    multipart_source = etag_parts(etag) is not None
    if config.keep_source_layout and not multipart_source:
        return True
    if multipart_source and config.part_copies == "always":
        return False
    return not config.is_multipart(size)


def planned_parts(config: TransferConfig, size: int, etag: str) -> int:
    """How many parts a copy will take (1: CopyObject), known without a request."""
    if single_copy(config, size, etag):
        return 1
    source = etag_parts(etag)
    if config.keep_source_layout and source:
        return source
    return config.parts(size)


def ranges(size: int, part: int) -> list[tuple[int, int]]:
    return [(first, min(first + part, size) - 1) for first in range(0, size, part)]

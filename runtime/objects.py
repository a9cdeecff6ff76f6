"""Several object files as one ``bytes``: the machine code of a module compiled in
parts (compiler/workers.py). One object stays as it is; a bundle is a header (magic,
count, lengths) then the objects. The cache, artifacts and loaders pass the bytes on
unchanged; what links or loads them asks ``unpack`` for the objects."""
from __future__ import annotations

import struct

MAGIC = b"\x7fSGOBJS1"


def pack(objects: list) -> bytes:
    if len(objects) == 1:
        return objects[0]
    head = MAGIC + struct.pack(f"<Q{len(objects)}Q", len(objects), *map(len, objects))
    return head + b"".join(objects)


def unpack(code: bytes) -> list:
    """The object files in ``code``; ValueError for a malformed bundle."""
    if not code.startswith(MAGIC):
        return [code]
    start = len(MAGIC) + 8
    if len(code) < start:
        raise ValueError("truncated object bundle")
    (count,) = struct.unpack_from("<Q", code, len(MAGIC))
    if count > (len(code) - start) // 8:
        raise ValueError("malformed object bundle")
    sizes = struct.unpack_from(f"<{count}Q", code, start)
    start += 8 * count
    if start + sum(sizes) != len(code):
        raise ValueError("malformed object bundle")
    out = []
    for n in sizes:
        out.append(code[start:start + n])
        start += n
    return out

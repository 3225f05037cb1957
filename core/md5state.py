"""MD5 with a saved midway state, for CRAM-MD5 without storing the password.

CRAM-MD5 is HMAC-MD5 keyed with the password. HMAC hashes one 64-byte block
derived from the key before the message, twice (inner and outer pad). mox
stores the MD5 state after each of those blocks, so a login can be checked
by finishing the two hashes over the challenge, and the password itself is
never kept. Python's hashlib cannot resume from a saved state, so the MD5
compression function (RFC 1321) is written out here; it only ever runs over
a challenge and a digest, two or three blocks per login.
"""

from __future__ import annotations

import math
import struct

_IV = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
_SHIFTS = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4
_K = [int(abs(math.sin(i + 1)) * 2**32) & 0xFFFFFFFF for i in range(64)]
_MASK = 0xFFFFFFFF
BLOCK = 64


def _rotl(x: int, c: int) -> int:
    return ((x << c) | (x >> (32 - c))) & _MASK


def _compress(state: tuple[int, int, int, int], block: bytes) -> tuple[int, int, int, int]:
    m = struct.unpack("<16I", block)
    a, b, c, d = state
    for i in range(64):
        if i < 16:
            f, g = (b & c) | (~b & d), i
        elif i < 32:
            f, g = (d & b) | (~d & c), (5 * i + 1) % 16
        elif i < 48:
            f, g = b ^ c ^ d, (3 * i + 5) % 16
        else:
            f, g = c ^ (b | (~d & _MASK)), (7 * i) % 16
        f = (f + a + _K[i] + m[g]) & _MASK
        a, d, c = d, c, b
        b = (b + _rotl(f, _SHIFTS[i])) & _MASK
    s = state
    return ((s[0] + a) & _MASK, (s[1] + b) & _MASK, (s[2] + c) & _MASK, (s[3] + d) & _MASK)


def state_after_block(block: bytes) -> bytes:
    """The 16-byte MD5 chaining state after hashing exactly one 64-byte block."""
    if len(block) != BLOCK:
        raise ValueError("md5 state needs exactly one 64-byte block")
    return struct.pack("<4I", *_compress(_IV, block))


def resume(state: bytes, data: bytes) -> bytes:
    """MD5 digest of (the 64-byte block behind ``state``) + ``data``."""
    if len(state) != 16:
        raise ValueError("md5 state is 16 bytes")
    h = struct.unpack("<4I", state)
    total = BLOCK + len(data)
    padded = data + b"\x80" + b"\0" * ((55 - total) % 64) + struct.pack("<Q", (total * 8) & (2**64 - 1))
    for i in range(0, len(padded), BLOCK):
        h = _compress(h, padded[i : i + BLOCK])
    return struct.pack("<4I", *h)

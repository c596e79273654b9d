"""CRC32 (zlib's polynomial, same values) at memory speed when python-isal is installed.

zlib's crc32 runs at ~1.5 GB/s and would be the slowest step of sealing fragments; ISA-L's
PCLMUL version runs at ~20 GB/s. Both give identical checksums, so files stay compatible.
"""

from __future__ import annotations

try:
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - optional speed-up
    from zlib import crc32

__all__ = ["crc32"]

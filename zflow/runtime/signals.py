"""Moved to :mod:`zflow.process` (issue 9, item 1), the one process and signal path.

Kept only so branches written against the old name still merge; delete once nothing imports it.
"""

from zflow.process import StopSignal

__all__ = ["StopSignal"]

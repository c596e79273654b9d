"""Dedup stage: generalized deduplication per column (a base id plus a deviation per value,
or a trend), keeping values addressable and queries decidable from the bases.

* :mod:`.generalized` - ``choose_split``, ``split_keys``, ``join_keys``, ``Trend``, ``classify_bases``
"""

"""Catalog: the replicated metadata of a dataset, and its upkeep.

* :mod:`.records` - catalog entries and object records, replicated to every location
  (``Catalog``, ``ObjectMeta``, ``load``, ``write_entry``, key builders)
* :mod:`.maintenance` - ``verify`` (checksums of fragments and catalog replicas) and ``repair``
  (rebuild lost or corrupted fragments and entries)
"""

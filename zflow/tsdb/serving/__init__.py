"""Serving stage: a dataset on Zenoh.

* :mod:`.zenoh_front` - the storage front: ingest puts and query gets on ``zflow/tsdb/{dataset}/**``
  (``Front``). The servers of fragment *locations* (HTTP range server, Zenoh location) live in
  :mod:`storage_backends`, next to their clients.
"""

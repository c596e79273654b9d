"""Query stage: selector -> plan -> byte-range fetches -> rows.

* :mod:`.selector` - queries and their selector form (``Query``, ``Pred``, ``parse_selector``)
* :mod:`.planner` - prune by metadata, settle undecided rows, project (``run``, ``run_naive``,
  ``Result``)
* :mod:`.fetch` - one multi-range request per fragment per phase (``Fetcher``)
* :mod:`.rowstates` - fused per-row predicate states on deduplicated columns
  (``_rowstates_numba`` holds the compiled kernels)
"""

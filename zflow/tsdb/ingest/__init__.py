"""Ingest stage: rows in, sealed erasure-coded objects out.

* :mod:`.readers` - CSV/JSONL rows into stored columns, checked value by value (``parse_file``,
  ``rows_to_columns``, ``read_csv``)
* :mod:`.infer` - a schema guessed from a CSV file (``infer``)
* :mod:`.ingestor` - buffering rows and sealing them into objects (``Ingestor``, ``seal``)
* :mod:`.fragment_placement` - which location holds fragment i of an object (``place``); not
  to be confused with node placement in :mod:`zflow.scheduler`
* :mod:`.synth` - synthetic Intel Berkeley Lab sensor rows for tests and benchmarks
"""

"""zflow: a Zenoh-centric dataflow runtime for the IoT-edge-cloud continuum.

The public surface for people writing nodes; everything else lives in subpackages.
"""

from zflow.runtime.api import Context, Message, Node, Operator, Sink, Source, operator, sink, source

__version__ = "0.1.0"

__all__ = [
    "Context",
    "Message",
    "Node",
    "Operator",
    "Sink",
    "Source",
    "__version__",
    "operator",
    "sink",
    "source",
]

"""zflow: a Zenoh-centric dataflow runtime for the IoT-edge-cloud continuum."""

__version__ = "0.1.0"

"""Packaging actions: reproducible multi-architecture OCI images, a lockfile, a registry client.

The pipeline (:func:`zflow.build.image.build_action`) reads like the order of its steps:
resolve (action -> plan) -> rootfs (Debian packages per architecture) -> wheels (binary
only, per architecture) -> layers (reproducible tars) -> oci_layout (configs, manifests,
index) -> lock (what was used, what came out) -> registry (push) or docker_engine (load).
``builder_operator`` runs the same pipeline for requests put on Zenoh.

Each module has one job and imports only the ones before it, never the CLI.
"""

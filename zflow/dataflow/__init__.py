"""Dataflow descriptors: models, validation, compilation into a graph."""

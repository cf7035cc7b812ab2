"""Peer implementations of the benchmark cases, written with other libraries."""

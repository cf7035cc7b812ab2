"""Side-by-side benchmarks of catalog_core and its peers: ``python -m benchmarks``."""

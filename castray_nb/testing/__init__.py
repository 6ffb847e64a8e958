"""Tools for tests and benchmarks only: never used by the package's own code paths."""

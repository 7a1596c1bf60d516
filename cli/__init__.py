"""The `kgen` command line: a thin click layer over the `kgen` library."""

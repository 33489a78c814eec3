"""Batch scoring (``sentinelle score``): files in this process, partitioned data on Dask."""

__all__ = ["files", "partitions"]

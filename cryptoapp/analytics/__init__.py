"""Batch analytics: the archive exported as Parquet, Spark jobs over it, their results loaded into MongoDB."""

"""Per-feature Shewhart limits, the largest standardized deviation of any feature: the ``shewhart`` kind."""

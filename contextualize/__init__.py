"""The semantic layer: ISA-95 asset model, tag map, unified namespace, MES context store and as-of join."""

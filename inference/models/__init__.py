"""Model kinds: one folder per kind, each implementing ``inference.models.base.ModelKind``."""

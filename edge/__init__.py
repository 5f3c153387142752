"""Factory Edge: the appliance (CLI, config, pipeline wiring, supervisor, sinks, spool, simulator)."""

__version__ = "0.1.0"

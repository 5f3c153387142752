"""CLI command groups of the appliance itself."""

"""The screens of the terminal UI: overview, equipment, insights, models, health, help."""

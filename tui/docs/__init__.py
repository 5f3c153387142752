"""Documentation assets of the terminal UI (screenshots and the script that makes them)."""

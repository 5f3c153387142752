"""The Textual terminal UI for plant engineers."""

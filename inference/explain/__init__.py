"""Explanations of alarms: the leading features against their training baseline, computed at scoring."""

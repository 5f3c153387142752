"""Offline evaluation: labelled files replayed through the live pipeline's code, and the benchmark scorers."""

"""Sinks: where envelopes end up: ``historian_sink`` (historian + spool), ``outbox_publisher`` (insights).
"""

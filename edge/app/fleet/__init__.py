"""The fleet view: heartbeats of the boxes of a site against the state ``firmware-config/`` renders."""

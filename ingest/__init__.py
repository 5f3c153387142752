"""Where plant data comes in: OPC-UA and MQTT sources, payload codecs, the data-quality gate, dead letters."""

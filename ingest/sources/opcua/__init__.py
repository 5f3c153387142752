"""OPC-UA ingest: the asyncua source, node naming and resolution, browse, and the client PKI."""

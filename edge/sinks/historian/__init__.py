"""The historian: schema migrations, roles, and the Arrow-batch writer (TimescaleDB or plain PostgreSQL)."""

"""Fault tests of the HA coordinator: real replicas, real Redis, SQLite and PostgreSQL."""

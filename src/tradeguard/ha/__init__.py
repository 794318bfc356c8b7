"""High availability: a fenced leader among engine replicas (SQL ledger + Redis lease)."""

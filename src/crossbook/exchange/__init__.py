"""The embedded exchange: accounts and matching engines as one deterministic machine."""

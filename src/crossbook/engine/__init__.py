"""The matching engine: one deterministic order book per market (pure core)."""

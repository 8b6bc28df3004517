"""The exchange's wallets: deterministic deposit addresses (``addresses``)."""

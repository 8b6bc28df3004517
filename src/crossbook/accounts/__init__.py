"""The account service: balances, holds, settlement and fees on a double-entry ledger."""

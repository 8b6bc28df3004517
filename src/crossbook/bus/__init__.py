"""Production adapters of the log/bus ports over NATS JetStream (nats-py)."""

"""The production layout: each stateful service its own process, over NATS JetStream.

::

    gateway --request--> accounts (shard K) --orders-SYMBOL--> engine (SYMBOL)
       ^   <---reply----   |   ^                                   |
       |                   |   +------------ engine-SYMBOL --------+
       +-- accounts-K ------+  (events: the same stream the embedded journal holds)

- ``accounts-K`` (JetStream log, single fenced writer: the accounts service) holds the
  accounts' inputs (gateway commands and the engines' events, as
  :class:`~crossbook.domain.routing.EngineEventsReceived`) and their outputs. Its EVENTS
  records are the exchange's complete event stream, shaped exactly like the embedded
  journal's, for the ledger writer, market data and the gateways' streams.
- ``orders-SYMBOL`` (fenced writer: accounts) holds the order commands forwarded to a
  market, with their accounts seqs; the market's engine reads it through a durable
  consumer and acks only once its own log holds the result.
- ``engine-SYMBOL`` (fenced writer: the engine) holds each engine command and its events;
  the accounts service tails it and feeds the events back into its own log.

Delivery is at-least-once everywhere and effects happen once: an engine skips commands
at or below its ``last_seq``; the accounts skip engine events for commands they already
settled; every publish is deduplicated by message id and fenced by expected sequence.
"""

"""Real infrastructure processes that Crossbook starts itself (tests, benchmarks,
``crossbook cluster``): private PostgreSQL servers and replica sets
(:mod:`crossbook.infra.postgres`)."""

"""The API gateway: REST and WebSocket, native and Binance-compatible."""

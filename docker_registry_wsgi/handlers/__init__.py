"""HTTP handlers, one module per endpoint group; they read requests and write responses only."""

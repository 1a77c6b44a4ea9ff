"""Sinks: DuckDB (the durable record), and settlement to Stripe and Solana after each batch."""

"""What the tests and the benchmarks share: real image bytes (images) and a live service (live)."""

"""Benchmarks of the VAE service: a raw-socket load generator, the scenarios of issue 6, and the
ceilings they are measured against. `python -m bench` (or `bash bench/run.sh`); see bench/README.md."""

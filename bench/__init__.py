"""Benchmarks of jobctl against a real, PostgreSQL-backed Prefect server: ``python -m bench``."""

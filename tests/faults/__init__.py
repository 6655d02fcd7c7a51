"""Faults injected on this machine: Redis restarts and outages, killed workers, broken
schedulers, poison messages (docs/reliability.md has the table)."""

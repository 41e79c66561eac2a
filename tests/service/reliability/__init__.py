"""Reliability and security tests: hostile corpus, schema fuzzing, overload, faults, auth (see docs/reliability.md)."""

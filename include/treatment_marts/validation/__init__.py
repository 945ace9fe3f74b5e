"""Validate: the Great Expectations suite, plain checks, quarantine and month-over-month drift."""

"""Protect: primary and secondary suppression, clean-up, the independent audit, record-level product."""

"""Publish: atomic release layout, warehouse, exports and the IG report."""

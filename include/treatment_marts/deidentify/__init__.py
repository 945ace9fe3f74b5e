"""De-identify: age bands, category collapses, pseudonymous client keys; identifiers dropped."""

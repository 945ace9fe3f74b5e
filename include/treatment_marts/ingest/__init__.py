"""Land: read an extract, type it against the contract, keep an immutable raw copy."""

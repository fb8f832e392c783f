"""The conformance suite: one module per part of the contract."""

"""The transactions conformance suite on every configured backend."""

from datafx.testing.conformance.transactions import *  # noqa: F403

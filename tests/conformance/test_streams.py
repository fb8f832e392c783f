"""The stream conformance suite on every configured backend."""

from datafx.testing.conformance.streams import *  # noqa: F403

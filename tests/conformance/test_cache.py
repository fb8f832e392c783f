"""The cache conformance suite on every configured backend."""

from datafx.testing.conformance.cache import *  # noqa: F403

"""The queue conformance suite on every configured backend."""

from datafx.testing.conformance.queues import *  # noqa: F403

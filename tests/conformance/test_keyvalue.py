"""The keyvalue conformance suite on every configured backend."""

from datafx.testing.conformance.keyvalue import *  # noqa: F403

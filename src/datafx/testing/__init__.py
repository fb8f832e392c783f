"""Test support shipped with datafx: the conformance suite and its fixtures.

An adapter proves it works by running the conformance suite unchanged.
In the adapter's test folder::

    # conftest.py
    import pytest
    from datafx.testing import BackendSpec, backend_fixture

    backend = backend_fixture([BackendSpec("mydb", dsn="mydb://127.0.0.1:7000")])

    # test_conformance.py
    from datafx.testing.conformance.keyvalue import *  # noqa: F403
    from datafx.testing.conformance.cache import *  # noqa: F403
    from datafx.testing.conformance.transactions import *  # noqa: F403

Each test takes the ``backend`` fixture, a :class:`Backend` with a fresh open
connection, and goes through the public ``datafx`` types only.
"""

from datafx.testing.fixtures import (
    Backend,
    BackendSpec,
    Capabilities,
    backend_fixture,
    load_sample_records,
    sample_data_path,
    server_reachable,
    services_required,
)

__all__ = [
    "Backend",
    "BackendSpec",
    "Capabilities",
    "backend_fixture",
    "load_sample_records",
    "sample_data_path",
    "server_reachable",
    "services_required",
]

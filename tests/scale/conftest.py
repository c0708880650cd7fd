"""Fixtures shared by the scale-out tests; each module provides its own `cluster`."""

import pytest


@pytest.fixture
def two_workers(cluster):
    """Return the module's cluster with two live workers (a test before may have killed some)."""
    return cluster.ensure_workers(2)

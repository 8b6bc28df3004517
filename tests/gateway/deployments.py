"""The ``deployment`` fixture of the API modules that also run against a cluster with
two accounts shards (the demo users are then on different shards). A module imports
:func:`every_deployment`; it replaces the conftest's fixture of the same name there."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import ALL_DEPLOYMENTS


@pytest.fixture(scope="module", params=ALL_DEPLOYMENTS, name="deployment")
def every_deployment(request: pytest.FixtureRequest) -> str:
    return str(request.param)

"""Property-based fuzzing of every operation in the app's own OpenAPI (schemathesis, in-process).

With a valid administrator token, valid (positive) and invalid (negative) inputs alike must never
produce a 5xx, and responses must match the documented schemas. Bounded (a few examples per
operation and mode) so it stays a test, not a campaign; marked ``slow``.

Each operation's strategy is run with Hypothesis directly rather than through
``schemathesis.pytest.from_fixture``, which does not work with pytest 9.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.api.conftest import World

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 15


def _operations(world: World):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.client.app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(world: World, mode: GenerationMode) -> None:
    auth = {"Authorization": f"Bearer {world.tokens['admin']}"}
    failures: list[str] = []
    for operation in _operations(world):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            # Keep the credential valid: the point is the routes' own input handling.
            case.headers = {**(case.headers or {}), **auth}
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to make invalid (an operation with no inputs, in negative mode)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)

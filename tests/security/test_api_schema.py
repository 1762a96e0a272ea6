"""schemathesis against /api/v1/schema: generated requests to every operation, in process.

Each operation gets requests built from its own schema (positive) and requests that break it
(negative), sent to Django's
WSGI application as a signed-in user with a registered key and a deployment of their own. The
checks: no 5xx, and every answer matches what the schema says (status code, content type,
body). The example count is small so CI stays fast; ZOS_FUZZ_EXAMPLES raises it for a long run
(`ZOS_FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/security/test_api_schema.py`).
"""

import itertools
import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import make_farm
from tests.coordinator.conftest import deployment_payload, make_online_node, make_tenant

# What the API promises: no 5xx, and answers (errors too) as the schema describes them. Not
# "valid data is accepted": a well-formed request can rightly be refused (a wrong password, a
# script that does not parse, a signature that does not verify).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = int(os.environ.get("ZOS_FUZZ_EXAMPLES", "8"))

# Routes fuzzed elsewhere or not JSON: blob uploads are raw bytes (tests/hub), node-signed
# routes need a fresh signature per request (tests/ledger/test_bad_input.py fuzzes those).
SKIPPED = r"^/api/v1/(blobs/|node-fetch/)"


@pytest.fixture
def api_schema(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return schemathesis.openapi.from_wsgi("/api/v1/schema", get_wsgi_application())


@pytest.fixture
def tenant(db, settings, tmp_path):
    from accounts.services import create_api_token

    settings.ZOS_BLOB_DIR = tmp_path / "blobs"
    alice = make_tenant("alice")
    node = make_online_node(make_farm("farm-a"), linked=False)
    response = alice.submit(deployment_payload(target={"node": node.pk}))
    assert response.status_code == 201, response.content
    _, secret = create_api_token(user=alice.user, name="fuzz")
    return {"Authorization": f"Token {secret}"}


def test_the_api_never_fails_and_answers_as_its_schema_says(api_schema, tenant):
    failures = {}
    operations = [
        result.ok() for result in api_schema.exclude(path_regex=SKIPPED).get_all_operations()
    ]
    assert len(operations) > 30  # the schema was read and lists the API
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case):
            case.call_and_validate(headers=tenant, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:  # nothing in this operation's schema can be broken (negative)
            continue
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # all operations run; failures reported together
            failures[f"{operation.label} ({mode.value})"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())

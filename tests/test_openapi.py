"""The OpenAPI document is valid and covers every endpoint and error."""

import pytest
import yaml
from django.core.management import call_command

from tests.test_api_access_matrix import ENDPOINTS


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from io import StringIO

    out = StringIO()
    with django_db_blocker.unblock():
        call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return yaml.safe_load(out.getvalue())


def test_schema_is_served_without_a_key(client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert client.get("/api/v1/docs/").status_code == 200


def test_schema_documents_every_endpoint_with_its_errors(schema):
    paths = schema["paths"]
    for path, method in [
        ("/api/v1/outputs", "post"),
        ("/api/v1/outputs", "get"),
        ("/api/v1/outputs/batch", "post"),
        ("/api/v1/outputs/{output_id}", "get"),
    ]:
        operation = paths[path][method]
        assert {"401", "403", "429"} <= set(operation["responses"]), (path, method)
        assert operation["security"] == [{"apiKey": []}]
    assert "409" in paths["/api/v1/outputs"]["post"]["responses"]
    assert "404" in paths["/api/v1/outputs/{output_id}"]["get"]["responses"]
    assert len(ENDPOINTS) == sum(len(ops) for ops in paths.values())


def test_submission_schema_names_required_fields(schema):
    submission = schema["components"]["schemas"]["OutputSubmissionRequest"]
    assert set(submission["required"]) == {"external_id", "application", "input", "output"}
    assert submission["additionalProperties"] is False

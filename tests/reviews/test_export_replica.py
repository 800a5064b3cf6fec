"""With a replica configured, the compliance export reads from it (here: the same database under a second alias)."""

import pytest
from django.conf import settings
from django.db import connections
from django.test.utils import CaptureQueriesContext

from hitl.db import read_database
from tests.reviews.conftest import submit
from tests.test_readme import settings_under

EXPORTED_TABLES = ("reviews_output", "reviews_judgement", "reviews_reviewtask", "reviews_review")


def test_the_replica_url_adds_a_replica_alias_that_tests_mirror():
    module = settings_under(
        {
            "DATABASE_URL": "postgres://hitl@primary.invalid:5432/hitl",
            "DATABASE_REPLICA_URL": "postgres://reader@replica.invalid:5432/hitl",
        }
    )

    replica = module.DATABASES["replica"]
    assert (replica["HOST"], replica["USER"], replica["NAME"]) == ("replica.invalid", "reader", "hitl")
    assert replica["OPTIONS"] == module.DATABASES["default"]["OPTIONS"]
    assert replica["TEST"] == {"MIRROR": "default"}


@pytest.fixture
def replica(transactional_db, monkeypatch):
    """A ``replica`` alias on the test database, as ``DATABASE_REPLICA_URL`` pointing at the primary gives."""
    config = {**connections["default"].settings_dict}
    # settings.DATABASES is the very dict the connection handler reads: monkeypatch removes the
    # alias again after the test, so that later tests (in this process) read the primary.
    monkeypatch.setitem(settings.DATABASES, "replica", config)
    assert connections.settings is settings.DATABASES
    # Connected here: Django's test case refuses to open connections of aliases it was not told of.
    connections["replica"].connect()
    yield connections["replica"]
    connections["replica"].close()
    delattr(connections._connections, "replica")


@pytest.mark.postgres
def test_the_export_reads_through_the_replica_alias(replica, tenant, workflow, client_for):
    submit(workflow, 1, "medium-app")
    submit(workflow, 2, "quiet-app")
    auditor = client_for(tenant, "auditor")
    assert read_database() == "replica"

    with CaptureQueriesContext(connections["default"]) as primary, CaptureQueriesContext(replica) as read:
        response = auditor.get(
            "/api/v1/audit/export", {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "format": "jsonl"}
        )
        lines = b"".join(response.streaming_content).splitlines()

    assert len(lines) == 2
    replica_sql = " ".join(query["sql"] for query in read.captured_queries)
    assert all(f'"{table}"' in replica_sql for table in EXPORTED_TABLES)
    primary_sql = " ".join(query["sql"] for query in primary.captured_queries)
    assert not [table for table in EXPORTED_TABLES if f'FROM "{table}"' in primary_sql]


@pytest.mark.postgres
def test_without_the_replica_reads_go_to_the_primary_again(transactional_db):
    # Runs after the test above in this module: its alias is gone.
    assert "replica" not in settings.DATABASES and read_database() == "default"

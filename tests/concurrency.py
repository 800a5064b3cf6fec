"""Firing the same kind of request from many threads at once (PostgreSQL tests)."""

import threading
import time
from contextlib import contextmanager

from django.db import connection
from rest_framework.test import APIClient


def race(raw_key: str, method: str, url: str, bodies: list) -> list:
    """One thread per body, released together by a barrier; the responses in body order."""
    barrier = threading.Barrier(len(bodies))
    responses: list = [None] * len(bodies)

    def worker(index: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        barrier.wait()
        try:
            responses[index] = getattr(client, method)(url, bodies[index], format="json")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def owner_connection():
    """A second connection to the test database, as the user the suite connects as (the owner: no
    tenant scope needed), for the other side of a race."""
    import psycopg

    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    )


@contextmanager
def other_transaction(now: list[tuple[str, list]], then: list[tuple[str, list]], *, after: float = 0.5):
    """The other side of a lock-order race (PostgreSQL): a second transaction runs ``now`` at once
    (taking its row locks), then, from a thread ``after`` seconds later (by when the code under
    test, run in the block, waits for one of them), ``then``, and commits. On leaving, the thread
    is joined and must have failed nowhere: a deadlock shows as PostgreSQL's error on one side."""
    other = owner_connection()
    failures = []

    def go_on():
        time.sleep(after)
        try:
            for sql, params in then:
                other.execute(sql, params)
            other.commit()
        except Exception as error:  # (reported on leaving)
            failures.append(error)
            other.rollback()

    try:
        for sql, params in now:
            other.execute(sql, params)
        thread = threading.Thread(target=go_on)
        thread.start()
        try:
            yield
        finally:
            thread.join()
    finally:
        other.close()
    assert failures == [], failures

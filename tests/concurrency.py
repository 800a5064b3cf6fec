"""Firing the same kind of request from many threads at once (PostgreSQL tests)."""

import threading

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

"""Settings of bench/ingest's gunicorn: the product's, plus the plain baseline view's URL.

Everything else (middleware, database options, DEBUG=0 hardening) is the product's,
so the API and the baseline are measured under identical settings.
"""

from hitl.settings import *  # noqa: F403

ROOT_URLCONF = "bench.ingest.baseline"

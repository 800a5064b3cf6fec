"""WSGI entry point (gunicorn hitl.wsgi; runserver loads it too)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

from hitl.beat import embedded_beat_ensure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")

_django = get_wsgi_application()


def application(environ, start_response):
    """Django's application; without a broker, the first request of a process starts its
    embedded beat (webhook retries, lease and judge sweeps: ``hitl.beat``)."""
    embedded_beat_ensure()
    return _django(environ, start_response)


def _freeze_startup_objects() -> None:
    """Keep the objects of start-up out of the garbage collector's way.

    A 100-item ingest batch allocates tens of thousands of short-lived objects,
    which sets off collections that would each walk everything Django and the
    apps loaded. Loading the URL conf (and with it every view) first and then
    freezing those objects makes parsing and validating a batch about three
    times cheaper (measured with cProfile in a gunicorn worker; bench/README.md).
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports every view module now, not on the first request)
    gc.collect()
    gc.freeze()


_freeze_startup_objects()

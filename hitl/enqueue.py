"""Sending Celery messages once a transaction commits, without making a lost broker a failed request.

The database is the source of truth: every message a service sends after its commit
stands for rows that a periodic sweep also finds (deliveries due, outputs waiting for
judges, expired leases). So when the broker cannot take a message (Redis down or
restarting), the committed work stays committed, the request answers as it would have,
and the sweep sends the message once the broker is back.
"""

import logging
from collections.abc import Callable

from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)

# What Celery raises when a message cannot be published (after its own short retries).
BROKER_ERRORS: tuple[type[BaseException], ...] = (BrokerError,)


def enqueue_on_commit(send: Callable[[], object], *, what: str, on_failure: Callable[[], object] | None = None) -> None:
    """Call ``send`` after the current transaction commits (at once outside one).

    A broker error is logged, not raised: ``what`` names the work in the log, and
    ``on_failure`` (optional) may make the sweep find it sooner. Any other error
    propagates as before (with tasks run in-process, it is the task's own).
    """

    def run() -> None:
        try:
            send()
        except BROKER_ERRORS as error:
            logger.warning("could not enqueue %s (%s); the periodic sweep will send it", what, error)
            if on_failure is not None:
                try:
                    on_failure()
                except Exception:  # the sweep still finds the work, only later
                    logger.exception("could not mark %s for the sweep", what)

    transaction.on_commit(run)

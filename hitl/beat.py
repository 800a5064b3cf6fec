"""Periodic tasks without a broker: the beat schedule, run by a thread of each web process.

With ``CELERY_BROKER_URL`` unset (the embedded default) there is neither a worker nor
``celery beat``: tasks run in-process when they are enqueued. What only a schedule
does would then never happen: a webhook that failed would wait for ever for its
retry, a lease that ran out would keep its task, an output whose judges crashed
would wait for them. So each web process runs ``CELERY_BEAT_SCHEDULE`` itself in a
daemon thread, started by the first request it serves (``hitl.wsgi``), so that a
process forked after loading the application runs its own. The scheduled tasks are
safe to run in several processes at once (they claim their rows), and each run is
independent of the last, so a process that dies loses nothing.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection

from hitl.celery import app

logger = logging.getLogger(__name__)


def schedule_seconds(schedule: dict) -> dict[str, float]:
    """Task name -> period in seconds, from a ``CELERY_BEAT_SCHEDULE`` (interval entries only)."""
    periods: dict[str, float] = {}
    for name, entry in schedule.items():
        every = entry["schedule"]
        if isinstance(every, timedelta):
            every = every.total_seconds()
        if not isinstance(every, int | float) or every <= 0:
            logger.warning("embedded beat: %s has no fixed interval; it runs under `celery beat` only", name)
            continue
        periods[entry["task"]] = float(every)
    return periods


def run_task(name: str) -> None:
    """Run a registered Celery task in this thread, as a worker would (``apply``: in-process).

    The thread's database connection is closed around it when it is broken or too old,
    as a request's is, so that a database restart is survived.
    """
    close_old_connections()
    try:
        app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
        app.tasks[name].apply(throw=True)
    finally:
        close_old_connections()


class EmbeddedBeat:
    """Runs each task of ``periods`` (name -> seconds) every so often, in a daemon thread.

    Every task runs once at start (work left by a previous process is picked up at
    once), then each period after its last run began. A task that raises is logged
    and runs again at its next time.
    """

    def __init__(self, periods: dict[str, float], *, run: Callable[[str], None] = run_task, tick: float = 1.0):
        self.periods = dict(periods)
        self.run = run
        self.tick = tick
        self.next_run = dict.fromkeys(self.periods, 0.0)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self, now: float) -> list[str]:
        """Run every task whose time has come; returns their names."""
        ran = []
        for name, period in self.periods.items():
            if self.next_run[name] > now:
                continue
            self.next_run[name] = now + period
            try:
                self.run(name)
            except Exception:
                logger.exception("embedded beat: %s failed; it runs again in %.0f s", name, period)
            ran.append(name)
        return ran

    def start(self) -> "EmbeddedBeat":
        self._thread = threading.Thread(target=self._loop, name="hitl-embedded-beat", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.run_due(time.monotonic())
            wait = min(self.next_run.values(), default=time.monotonic() + self.tick) - time.monotonic()
            self._stopping.wait(min(max(wait, 0.0), self.tick))
        connection.close()  # this thread's own


_beat: EmbeddedBeat | None = None
_beat_pid: int | None = None
_beat_lock = threading.Lock()


def embedded_beat_ensure() -> EmbeddedBeat | None:
    """Start this process's beat once (again in a forked child) when tasks run in-process."""
    global _beat, _beat_pid
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return None  # a broker: `celery beat` sends the schedule to the workers
    if _beat_pid == os.getpid():
        return _beat
    with _beat_lock:
        if _beat_pid != os.getpid():
            _beat = EmbeddedBeat(schedule_seconds(settings.CELERY_BEAT_SCHEDULE)).start()
            _beat_pid = os.getpid()
            logger.info("embedded beat started (no broker): %s", ", ".join(_beat.periods))
    return _beat

"""The embedded beat: without a broker, the web process runs the periodic tasks itself."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as project_settings

from hitl import beat
from hitl.beat import EmbeddedBeat, embedded_beat_ensure, schedule_seconds

ROOT = Path(__file__).resolve().parents[2]


def test_the_schedule_is_read_as_periods_in_seconds(caplog):
    schedule = {
        "sweep": {"task": "app.tasks.sweep_task", "schedule": 15.0},
        "release": {"task": "app.tasks.release_task", "schedule": timedelta(seconds=30)},
        "nightly": {"task": "app.tasks.nightly_task", "schedule": object()},  # a crontab: `celery beat` only
    }

    assert schedule_seconds(schedule) == {"app.tasks.sweep_task": 15.0, "app.tasks.release_task": 30.0}
    assert "nightly has no fixed interval" in caplog.text


def test_the_project_schedule_runs_the_sweeps():
    assert set(schedule_seconds(project_settings.CELERY_BEAT_SCHEDULE)) == {
        "reviews.tasks.webhook_sweep_task",
        "reviews.tasks.tasks_release_expired_task",
        "reviews.tasks.judges_reconcile_task",
        "reviews.tasks.retention_apply_task",
        "tenants.tasks.audit_checkpoints_task",
        "reviews.tasks.tasks_sla_sweep_task",
        "reviews.tasks.compliance_exports_resume_task",
        "quality.tasks.judges_agreement_check_task",
        "quality.tasks.metrics_rollup_task",
        "reviews.tasks.signal_statistics_refresh_task",
        "reviews.tasks.certifications_expire_task",
    }


def test_every_task_runs_at_start_then_once_a_period_and_a_failure_stops_nothing(caplog):
    ran = []

    def run(name):
        ran.append(name)
        if name == "broken":
            raise RuntimeError("database gone")

    scheduler = EmbeddedBeat({"broken": 10.0, "sweep": 5.0}, run=run)

    assert scheduler.run_due(100.0) == ["broken", "sweep"]
    assert scheduler.run_due(104.9) == []
    assert scheduler.run_due(105.0) == ["sweep"]
    assert scheduler.run_due(110.0) == ["broken", "sweep"]
    assert ran == ["broken", "sweep", "sweep", "broken", "sweep"]
    assert "embedded beat: broken failed; it runs again in 10 s" in caplog.text


class FakeBeat:
    started = 0

    def __init__(self, periods):
        self.periods = periods

    def start(self):
        FakeBeat.started += 1
        return self


@pytest.fixture
def fake_beat(monkeypatch):
    FakeBeat.started = 0
    monkeypatch.setattr(beat, "EmbeddedBeat", FakeBeat)
    monkeypatch.setattr(beat, "_beat", None)
    monkeypatch.setattr(beat, "_beat_pid", None)
    return FakeBeat


def test_a_process_without_a_broker_starts_one_beat(settings, fake_beat, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    first, second = embedded_beat_ensure(), embedded_beat_ensure()

    assert first is second and fake_beat.started == 1
    monkeypatch.setattr(beat.os, "getpid", lambda: -1)  # a child forked after the first request
    assert embedded_beat_ensure() is not first and fake_beat.started == 2


def test_with_a_broker_celery_beat_runs_the_schedule_instead(settings, fake_beat):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    assert embedded_beat_ensure() is None and fake_beat.started == 0


def test_the_wsgi_application_starts_the_beat_on_its_first_request():
    # In a child process: the application module freezes the garbage collector's view of start-up.
    script = """
import os, sys
from hitl import beat
started = []
beat.EmbeddedBeat.start = lambda self: started.append(sorted(self.periods)) or self
from hitl.wsgi import application
assert started == [], "started before any request"
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/no-such-page/", "SERVER_NAME": "127.0.0.1",
           "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": sys.stdin.buffer, "wsgi.errors": sys.stderr}
for _ in range(2):
    b"".join(application(environ, lambda status, headers: None))
print(started)
"""
    env = {key: value for key, value in os.environ.items() if key not in ("CELERY_BROKER_URL", "DEBUG")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    periods = sorted(schedule_seconds(project_settings.CELERY_BEAT_SCHEDULE))
    assert result.stdout.strip().splitlines()[-1] == str([periods])  # once, on the first request

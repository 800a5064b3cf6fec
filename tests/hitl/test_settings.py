"""Settings come from the environment; production refuses to start half-configured."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-production-secret-key-" + "x" * 40,
    "ALLOWED_HOSTS": "hitl.example.com",
    "DATABASE_URL": "sqlite:////tmp/hitl-deploy-check.sqlite3",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "HITL_SECRET_KEYS": "kQ6fJgu2Zb4l9XDbI2HZmUGK3fmcp5WKp8jSSOQrUn8=",
    "HITL_AUDIT_SIGNING_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
}
TEST_ONLY = {"DJANGO_ALLOW_ASYNC_UNSAFE"}


def manage(*args, env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    # Not the test session's own relaxations either (tests/browser allows async-unsafe ORM calls).
    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION.keys() | TEST_ONLY}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env_overrides=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_a_secret_key_refuses_to_start():
    settings = {**PRODUCTION, "SECRET_KEY": ""}
    result = manage("check", env_overrides=settings)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_without_keys_for_secrets_at_rest_refuses_to_start():
    result = manage("check", env_overrides={**PRODUCTION, "HITL_SECRET_KEYS": ""})
    assert result.returncode != 0
    assert "HITL_SECRET_KEYS must be set when DEBUG is off" in result.stderr


def test_a_malformed_secret_key_is_named_by_position_without_echoing_it():
    keys = PRODUCTION["HITL_SECRET_KEYS"] + ",not-a-fernet-key"
    result = manage("check", env_overrides={**PRODUCTION, "HITL_SECRET_KEYS": keys})
    assert result.returncode != 0
    assert "HITL_SECRET_KEYS: key 2 is not a Fernet key" in result.stderr
    assert "not-a-fernet-key" not in result.stderr


def test_a_malformed_boolean_is_named():
    result = manage("check", env_overrides={**PRODUCTION, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_embedded_defaults_without_environment(settings):
    # This test process itself started with nothing but (maybe) DATABASE_URL set.
    assert settings.CELERY_TASK_ALWAYS_EAGER is (not os.environ.get("CELERY_BROKER_URL"))
    if not os.environ.get("DATABASE_URL"):
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"

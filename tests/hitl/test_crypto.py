"""Secrets at rest: judge API keys and webhook secrets are Fernet tokens in the database, keys rotate."""

from io import StringIO
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from hitl.crypto import SecretDecryptionError, column_decrypt, column_encrypt, secret_decrypt, secret_encrypt
from policies.models import Judge
from policies.services import judge_create
from reviews.models import WebhookEndpoint
from reviews.services.webhooks import webhook_endpoint_create, webhook_endpoint_update

OLD, NEW, STRANGER = (Fernet.generate_key().decode() for _ in range(3))
API_KEY = "sk-judge-key-0123456789"
WEBHOOK_SECRET = "a-webhook-secret-of-20"
LLM = {
    "name": "helpful",
    "kind": "llm",
    "params": {"base_url": "https://llm.example.com/v1", "model": "m", "prompt_template": "Judge: {{output}}"},
}


def raw(model, pk, column: str) -> str:
    """The column as stored, read past the ORM."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote(column)} FROM {quote(model._meta.db_table)} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def store_raw(model, pk, column: str, value: str) -> None:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {quote(column)} = %s WHERE id = %s",  # noqa: S608
            [value, pk],
        )


@pytest.fixture
def keys(settings):
    settings.HITL_SECRET_KEYS = [OLD]
    return settings


@pytest.fixture
def secrets_stored(tenant, keys):
    judge = judge_create(tenant=tenant, data={**LLM, "api_key": API_KEY})
    endpoint = webhook_endpoint_create(tenant=tenant, url="https://hooks.example/x", secret=WEBHOOK_SECRET)
    return judge, endpoint


def test_secrets_are_stored_encrypted_and_read_back_in_plain(tenant, secrets_stored):
    judge, endpoint = secrets_stored

    stored_key, stored_secret = raw(Judge, judge.pk, "api_key"), raw(WebhookEndpoint, endpoint.pk, "secret")

    assert API_KEY not in stored_key and WEBHOOK_SECRET not in stored_secret
    assert Fernet(OLD).decrypt(stored_key.encode()).decode() == API_KEY
    assert Fernet(OLD).decrypt(stored_secret.encode()).decode() == WEBHOOK_SECRET
    assert Judge.objects.for_tenant(tenant).get(pk=judge.pk).api_key == API_KEY
    assert WebhookEndpoint.objects.for_tenant(tenant).get(pk=endpoint.pk).secret == WEBHOOK_SECRET
    assert WebhookEndpoint.objects.for_tenant(tenant).values_list("secret", flat=True).get() == WEBHOOK_SECRET


def test_a_changed_secret_is_stored_encrypted_too(tenant, secrets_stored):
    _, endpoint = secrets_stored

    webhook_endpoint_update(tenant=tenant, endpoint_id=endpoint.pk, secret="another-secret-of-20")

    assert "another-secret-of-20" not in raw(WebhookEndpoint, endpoint.pk, "secret")
    assert WebhookEndpoint.objects.for_tenant(tenant).get(pk=endpoint.pk).secret == "another-secret-of-20"


def test_the_same_secret_encrypts_differently_each_time(keys):
    assert secret_encrypt(API_KEY) != secret_encrypt(API_KEY)
    assert secret_decrypt(secret_encrypt("ünïcode ✓")) == "ünïcode ✓"


def test_no_secret_stays_empty_so_a_missing_key_needs_no_decryption(tenant, keys):
    judge = judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})

    assert raw(Judge, judge.pk, "api_key") == ""
    assert Judge.objects.for_tenant(tenant).filter(api_key="").count() == 1


def test_history_tables_never_hold_the_secrets(secrets_stored):
    for model, field in ((Judge, "api_key"), (WebhookEndpoint, "secret")):
        assert field not in {f.name for f in model.history.model._meta.get_fields()}


def test_rotation_reencrypts_every_secret_with_the_first_key(tenant, secrets_stored, keys):
    judge, endpoint = secrets_stored
    keys.HITL_SECRET_KEYS = [NEW, OLD]  # the new key first; the old one still decrypts
    assert Judge.objects.for_tenant(tenant).get(pk=judge.pk).api_key == API_KEY  # no downtime
    output = StringIO()

    call_command("rotate_secrets", stdout=output)

    assert "policies.Judge.api_key: 1 re-encrypted" in output.getvalue()
    assert "reviews.WebhookEndpoint.secret: 1 re-encrypted" in output.getvalue()
    assert Fernet(NEW).decrypt(raw(Judge, judge.pk, "api_key").encode()).decode() == API_KEY
    assert Fernet(NEW).decrypt(raw(WebhookEndpoint, endpoint.pk, "secret").encode()).decode() == WEBHOOK_SECRET
    keys.HITL_SECRET_KEYS = [NEW]  # the old key can go now
    assert Judge.objects.for_tenant(tenant).get(pk=judge.pk).api_key == API_KEY
    assert WebhookEndpoint.objects.for_tenant(tenant).get(pk=endpoint.pk).secret == WEBHOOK_SECRET

    again = StringIO()
    call_command("rotate_secrets", stdout=again)
    assert "policies.Judge.api_key: 0 re-encrypted, 1 already under the first key" in again.getvalue()


def test_a_secret_under_a_key_no_longer_configured_is_a_clear_error(tenant, secrets_stored, keys):
    judge, _ = secrets_stored
    keys.HITL_SECRET_KEYS = [STRANGER]

    with pytest.raises(SecretDecryptionError, match=r"policies\.Judge\.api_key cannot be decrypted .*HITL_SECRET_KEYS"):
        Judge.objects.for_tenant(tenant).get(pk=judge.pk)
    with pytest.raises(CommandError, match=r"policies\.Judge\.api_key of row \d+ cannot be decrypted"):
        call_command("rotate_secrets", stdout=StringIO())


def test_an_altered_token_is_refused(tenant, secrets_stored):
    _, endpoint = secrets_stored
    token = raw(WebhookEndpoint, endpoint.pk, "secret")
    store_raw(WebhookEndpoint, endpoint.pk, "secret", token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:])

    with pytest.raises(SecretDecryptionError, match="altered"):
        WebhookEndpoint.objects.for_tenant(tenant).get(pk=endpoint.pk)


def test_the_data_migration_encrypts_plain_text_left_by_earlier_versions(tenant, secrets_stored):
    judge, endpoint = secrets_stored
    store_raw(Judge, judge.pk, "api_key", API_KEY)  # as version 0003 stored it
    editor = SimpleNamespace(connection=connection)

    column_encrypt(editor, Judge._meta.db_table, "api_key")
    column_encrypt(editor, WebhookEndpoint._meta.db_table, "secret")  # already a token: left as it is

    assert raw(Judge, judge.pk, "api_key") != API_KEY
    assert Judge.objects.for_tenant(tenant).get(pk=judge.pk).api_key == API_KEY
    assert WebhookEndpoint.objects.for_tenant(tenant).get(pk=endpoint.pk).secret == WEBHOOK_SECRET
    column_decrypt(editor, Judge._meta.db_table, "api_key")  # the way back
    assert raw(Judge, judge.pk, "api_key") == API_KEY

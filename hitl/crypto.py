"""Secrets at rest: tenants' judge API keys and webhook signing secrets, encrypted with Fernet.

The keys come from ``HITL_SECRET_KEYS`` (settings): the first encrypts, every one
decrypts, so that a key is rotated without downtime: put the new key first and keep
the old one after it, deploy, run ``manage.py rotate_secrets`` (every stored secret
re-encrypted with the first key), then drop the old key.

A model stores a secret in an :class:`EncryptedTextField`: the database holds the
Fernet token (authenticated AES-128-CBC, tamper-evident), the Python attribute the
plain text. The empty string stays empty (it means "no secret"), so "is a key set?"
needs no key. Django's history tables never see the field (the models exclude it).
"""

import logging
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Cast

logger = logging.getLogger(__name__)


class SecretDecryptionError(RuntimeError):
    """A stored secret could not be decrypted with any key in ``HITL_SECRET_KEYS``."""


@lru_cache(maxsize=8)
def _box(keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet]:
    fernets = [Fernet(key) for key in keys]
    return MultiFernet(fernets), fernets[0]


def secret_box() -> MultiFernet:
    """The configured keys: the first encrypts, all decrypt (settings may change in tests)."""
    return _box(tuple(settings.HITL_SECRET_KEYS))[0]


def secret_encrypt(plaintext: str) -> str:
    """A Fernet token (ASCII) for ``plaintext`` under the first key; ``""`` stays ``""``."""
    if plaintext == "":
        return ""
    return secret_box().encrypt(plaintext.encode()).decode("ascii")


def _undecryptable(where: str) -> SecretDecryptionError:
    return SecretDecryptionError(
        f"{where} cannot be decrypted with any key in HITL_SECRET_KEYS: the key that encrypted it "
        "is not configured (was a key dropped before `manage.py rotate_secrets` re-encrypted "
        "everything with the first one?), or the stored value was altered."
    )


def secret_decrypt(token: str, *, where: str = "a stored secret") -> str:
    """The plain text of a token from ``secret_encrypt``; ``SecretDecryptionError`` names ``where``."""
    if token == "":
        return ""
    try:
        return secret_box().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise _undecryptable(where) from None


def secret_is_current(token: str) -> bool:
    """Whether the token is already under the first key (nothing to rotate)."""
    if token == "":
        return True
    try:
        _box(tuple(settings.HITL_SECRET_KEYS))[1].decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeError):
        return False
    return True


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token, read back as the plain text.

    Encryption is randomised, so the field can only be compared with ``""`` (no
    secret) in a query; it is meant to be read and written, never searched.
    """

    description = "Text encrypted at rest (Fernet, keys from HITL_SECRET_KEYS)"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        return secret_decrypt(value, where=f"{self.model._meta.label}.{self.name}")

    def get_db_prep_value(self, value, connection, prepared=False):
        value = super().get_db_prep_value(value, connection, prepared)
        if value is None:
            return value
        return secret_encrypt(value)


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) that stores an encrypted secret, in a stable order."""
    return [
        (model, field.name)
        for model in sorted(apps.get_models(), key=lambda model: model._meta.label)
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField)
    ]


def secrets_rotate(*, batch_size: int = 500) -> dict[str, tuple[int, int]]:
    """Re-encrypt every stored secret that is not under the first key; safe to repeat.

    Returns ``{"app.Model.field": (re-encrypted, already current)}``. Each batch of
    rows is locked while it is rewritten, so that a secret changed meanwhile is not
    overwritten with its old value. A token that no configured key opens stops the
    run with ``SecretDecryptionError`` naming the row (what was done so far stays).
    """
    box = secret_box()
    report: dict[str, tuple[int, int]] = {}
    for model, name in encrypted_fields():
        label = f"{model._meta.label}.{name}"
        manager = model._base_manager
        rotated = current = 0
        pks = list(manager.exclude(**{name: ""}).order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(pks), batch_size):
            with transaction.atomic():
                rows = (
                    manager.select_for_update(no_key=True)
                    .filter(pk__in=pks[start : start + batch_size])
                    .exclude(**{name: ""})
                    # The raw token, not the decrypted value: a cast is read as plain text.
                    .annotate(token=Cast(name, models.TextField()))
                    .values_list("pk", "token")
                )
                for pk, token in rows:
                    if secret_is_current(token):
                        current += 1
                        continue
                    try:
                        fresh = box.rotate(token.encode("ascii")).decode("ascii")
                    except (InvalidToken, UnicodeError):
                        raise _undecryptable(f"{label} of row {pk}") from None
                    # The token as it is (an expression skips the field's encryption). The field
                    # is kept out of the history table, so this update hides nothing from it.
                    manager.filter(pk=pk).update(**{name: models.Value(fresh, output_field=models.TextField())})
                    rotated += 1
        report[label] = (rotated, current)
        logger.info("rotate_secrets: %s: %d re-encrypted, %d already current", label, rotated, current)
    return report


def column_encrypt(schema_editor, table: str, column: str) -> None:
    """Data migrations: encrypt a column's plain-text values in place (tokens already there stay)."""
    _column_rewrite(schema_editor, table, column, encrypt=True)


def column_decrypt(schema_editor, table: str, column: str) -> None:
    """The reverse data migration: back to plain text."""
    _column_rewrite(schema_editor, table, column, encrypt=False)


def _column_rewrite(schema_editor, table: str, column: str, *, encrypt: bool) -> None:
    quote = schema_editor.connection.ops.quote_name
    box = secret_box()
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {quote(column)} FROM {quote(table)} WHERE {quote(column)} <> ''")  # noqa: S608
        rows = cursor.fetchall()
        for pk, value in rows:
            try:
                plaintext = box.decrypt(value.encode("ascii")).decode()
            except (InvalidToken, UnicodeError):
                plaintext = None  # not a token of ours: plain text
            if encrypt and plaintext is None:
                new = secret_encrypt(value)
            elif not encrypt and plaintext is not None:
                new = plaintext
            else:
                continue
            cursor.execute(
                f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE id = %s",  # noqa: S608
                [new, pk],
            )

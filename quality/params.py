"""The period and grouping of a metrics read, from a query string (the API and the pages share it)."""

import re
from datetime import UTC, date, datetime, time

from hitl.errors import DomainValidationError, RuleViolationError
from quality.metrics import GROUP_BY, MAX_DAYS

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_GROUPS = 2


def _instant(name: str, raw: str | None) -> datetime:
    if raw is None or not (_DATETIME.fullmatch(raw) or _DATE.fullmatch(raw)):
        message = "Required: a date (2026-01-01) or an RFC 3339 date-time on a whole hour (2026-01-01T00:00:00Z)."
        raise DomainValidationError(f"{name}: {message}", fields={name: [message]})
    try:
        if _DATE.fullmatch(raw):
            return datetime.combine(date.fromisoformat(raw), time.min, tzinfo=UTC)
        moment = datetime.fromisoformat(raw.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise RuleViolationError(f"{name}: not a valid instant ({error})", fields={name: [str(error)]}) from error
    if moment.minute or moment.second or moment.microsecond:
        message = "Must be on a whole hour (UTC): metrics are kept per hour and per day."
        raise RuleViolationError(f"{name}: {message}", fields={name: [message]})
    return moment


def metrics_period(params) -> tuple[datetime, datetime]:
    """``from`` (inclusive) and ``to`` (exclusive): whole hours, ``to`` later, at most MAX_DAYS apart."""
    start, end = _instant("from", params.get("from")), _instant("to", params.get("to"))
    if end <= start:
        message = "Must be later than `from`."
        raise RuleViolationError(f"to: {message}", fields={"to": [message]})
    if (end - start).total_seconds() > MAX_DAYS * 86_400:
        message = f"The period may span at most {MAX_DAYS} days."
        raise RuleViolationError(f"to: {message}", fields={"to": [message]})
    return start, end


def metrics_group_by(raw: str | None) -> tuple[str, ...]:
    """``group_by``: up to two distinct dimensions, comma-separated (e.g. ``model,day``)."""
    if raw is None:
        return ()
    names = tuple(part.strip() for part in raw.split(","))
    unknown = [name for name in names if name not in GROUP_BY]
    if unknown or not raw:
        message = f"One or two of: {', '.join(GROUP_BY)}, comma-separated (e.g. model,day)."
        raise DomainValidationError(f"group_by: {message}", fields={"group_by": [message]})
    if len(names) > MAX_GROUPS or len(set(names)) != len(names):
        message = f"At most {MAX_GROUPS} distinct dimensions."
        raise RuleViolationError(f"group_by: {message}", fields={"group_by": [message]})
    return names

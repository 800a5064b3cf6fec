"""Building blocks of the API's pydantic models, shared by every app.

The models are the published OpenAPI schemas (drf-spectacular reads them), so each
type here says in the schema exactly what the server accepts or sends.
"""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


def integral(value):
    # JSON Schema counts 3.0 as an integer (a number with no fraction), so the API does too;
    # strict validation still refuses strings, booleans and 3.5.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _text_only(value):
    # Timestamps arrive as JSON strings; a number is not taken for one.
    if not isinstance(value, str | datetime):
        raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 date-time string")
    return value


JsonInt = Annotated[int, BeforeValidator(integral)]
"""An integer as JSON Schema defines it: 3 or 3.0, never "3", true or 3.5. Give bounds in the
field's own ``Field(ge=..., le=...)``: nested in another ``Annotated`` they would not reach the
schema (pydantic writes them as unknown keywords); inside ``| None``, spell the type out as
``Annotated[int, Field(ge=...), BeforeValidator(integral)]``."""

PositiveJsonInt = Annotated[int, Field(ge=1), BeforeValidator(integral)]
"""A JsonInt of at least 1 (a version, an id), usable inside ``| None``."""

JsonDateTime = Annotated[datetime, BeforeValidator(_text_only), Field(strict=False)]
"""An ISO 8601 date-time string (in a strict model, where datetimes would refuse strings)."""


class ResponseModel(BaseModel):
    """Base of response bodies: exactly the documented fields, so a stray key is an error, not a body."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

"""How the quality pages write figures: rates as percentages, times in seconds or minutes,
and "no data yet" for what is not known (a rate over nothing, a figure not wired yet)."""

from django import template

register = template.Library()
NO_DATA = "no data yet"


def percent(value) -> str:
    return NO_DATA if value is None else f"{value * 100:.1f} %"


def seconds(value) -> str:
    if value is None:
        return NO_DATA
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min"


def number(value) -> str:
    if value is None:
        return NO_DATA
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def ratio(value) -> str:
    return NO_DATA if value is None else f"{value:.2f}"


FORMATS = {"percent": percent, "seconds": seconds, "number": number, "ratio": ratio}
for _name, _function in FORMATS.items():
    register.filter(_name, _function)


@register.filter
def figure(value, kind: str) -> str:
    """``{{ value|figure:"percent" }}``: a value in the format its chart uses."""
    return FORMATS[kind](value)

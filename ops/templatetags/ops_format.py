from django import template

register = template.Library()


@register.filter(name="bytes")
def bytes_(value: int) -> str:
    """1536 → "1.5 KiB": capacities as operators read them."""
    value = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"

"""How a size in bytes is written everywhere the app says one: binary units, as memory is counted
(and as the fit check's figures are), so a download's size and the memory it needs compare."""

from __future__ import annotations

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def size_text(n: int | float | None, gib_digits: int = 1) -> str:
    """"1.4 GiB" from a gibibyte up, "300 MiB" below it, "12 KiB" below that; "—" when unknown."""
    if n is None:
        return "—"
    if n >= GIB:
        return f"{n / GIB:.{gib_digits}f} GiB"
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{n / KIB:.0f} KiB" if n >= KIB else f"{n:.0f} bytes"


def exact_size_text(n: int) -> str:
    """Exact, and readable when large: "1 byte", "900 bytes", "31,457,280 bytes (30.0 MiB)"."""
    exact = "1 byte" if n == 1 else f"{n:,} bytes"
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            return f"{exact} ({n / size:.1f} {unit})"
    return exact

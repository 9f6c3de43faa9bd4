"""A pydantic validation failure said in one line: where, what, and how many more."""

from __future__ import annotations

from pydantic import ValidationError


def first_problem(err: ValidationError, *, located: bool = True) -> str:
    """The first error as `loc: message` (or only the message), e.g. `keys.0.sha256: Field
    required`; pydantic's "Value error, " prefix is dropped, and further errors are counted."""
    first = err.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {err.error_count() - 1} more problem(s))" if err.error_count() > 1 else ""
    return (f"{where}: {message}" if located and where else message) + more

"""An MCP server's question as a form on the terminal: its fields from the requested JSON
Schema (what `orch answer` and `orch run` show and ask), and typed values from what is typed."""

from __future__ import annotations

import json
import math
from typing import Any

from api.cli.client_commands import say


def field_line(name: str, spec: dict[str, Any], required: bool) -> str:
    """One field of an elicitation's form: its name, type, title, description, choices, default."""
    line = f"{name} ({type_name(spec)}{', required' if required else ''})"
    about = " - ".join(str(spec[key]) for key in ("title", "description") if spec.get(key))
    if about:
        line += f": {about}"
    choices = field_choices(spec)
    if choices:
        line += f"; one of: {', '.join(shown_value(choice) for choice in choices)}"
    if "default" in spec:
        line += f"; default: {shown_value(spec['default'])}"
    return line


def type_name(spec: dict[str, Any]) -> str:
    """A field's JSON Schema type as a person reads it (an array: comma-separated strings)."""
    kind = field_type(spec)
    if kind == "array":
        items = spec.get("items")
        return f"array of {(field_type(items) if isinstance(items, dict) else None) or 'string'}, comma-separated"
    return kind or "string"


def field_type(spec: dict[str, Any]) -> str | None:
    """A field's type (the first besides null of a list of types), None when it has none."""
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def field_choices(spec: dict[str, Any]) -> list[Any]:
    """The values a field may take (`enum`, or the `const` of each `oneOf`/`anyOf` option; an
    array's of its items), empty when any value of its type will do."""
    if field_type(spec) == "array":
        items = spec.get("items")
        return field_choices(items) if isinstance(items, dict) else []
    if isinstance(spec.get("enum"), list):
        return list(spec["enum"])
    options = spec.get("oneOf") or spec.get("anyOf")
    if isinstance(options, list):
        return [option["const"] for option in options if isinstance(option, dict) and "const" in option]
    return []


def shown_value(value: Any) -> str:
    """A field's value as typed on the command line (booleans true/false, arrays comma-separated)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, list):
        return ",".join(shown_value(item) for item in value)
    return str(value)


def has_form(pending: dict[str, Any] | None) -> bool:
    """Whether `pending` is an elicitation with fields to fill in."""
    return (
        pending is not None
        and pending.get("kind") == "elicitation"
        and not pending.get("url")
        and bool(form_fields(pending))
    )


def form_fields(pending: dict[str, Any]) -> dict[str, dict[str, Any]]:
    properties = (pending.get("requested_schema") or {}).get("properties")
    return properties if isinstance(properties, dict) else {}


def fill_in(pending: dict[str, Any]) -> dict[str, Any]:
    """An elicitation's form filled in on the terminal, field by field: an empty answer keeps the
    default or leaves an optional field out; a value that does not convert is asked again.
    EOFError when stdin ends."""
    required = set((pending.get("requested_schema") or {}).get("required") or [])
    content: dict[str, Any] = {}
    for name, spec in form_fields(pending).items():
        say(f"  {field_line(name, spec, name in required)}")
        default = f" [{shown_value(spec['default'])}]" if "default" in spec else ""
        while True:
            text = input(f"  {name}{default}: ").strip()
            if not text:
                if "default" in spec:
                    content[name] = spec["default"]
                elif name in required:
                    say(f"  {name} is required")
                    continue
                break
            try:
                content[name] = field_value(spec, text)
            except ValueError as err:
                say(f"  {err}")
                continue
            break
    return content


BOOLEANS = {"true": True, "yes": True, "false": False, "no": False}


def field_value(spec: dict[str, Any], text: str) -> Any:
    """`text` as the value of a field of JSON Schema `spec`: an integer, a number, a boolean
    (true/false/yes/no), an array of strings (comma-separated) or a string; ValueError saying
    what it wants when `text` is none of these, or not one of the field's choices."""
    kind = field_type(spec)
    value: Any
    if kind == "integer":
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
    elif kind == "number":
        value = _number(text)
    elif kind == "boolean":
        value = BOOLEANS.get(text.strip().lower())
        if value is None:
            raise ValueError(f"{text!r} is not a boolean: answer true/false or yes/no")
    elif kind == "array":
        value = [item.strip() for item in text.split(",") if item.strip()]
    else:
        value = text
    choices = field_choices(spec)
    if choices:
        unknown = [item for item in (value if isinstance(value, list) else [value]) if item not in choices]
        if unknown:
            shown = ", ".join(shown_value(choice) for choice in choices)
            raise ValueError(f"{shown_value(unknown[0])!r} is not one of: {shown}")
    return value


def _number(text: str) -> int | float:
    """A number as typed (an integer stays one)."""
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value

"""Event type names and the subscription patterns that select them.

A type is `resource.action` (two or more lowercase segments separated by
dots). A pattern is a type, or has `*` segments: `*` stands for exactly one
segment, except in last place where it stands for one or more, so
`person.*` matches `person.created` and `*.*` or `*` match every type but
Herald's own operational events: `herald.…` types are selected only by a
pattern that names them (`herald.*`, `herald.alert.*`, `herald.alert.opened`).
"""

import re

MAX_TYPE_LENGTH = 100
_SEGMENT = r"[a-z][a-z0-9_]*"
TYPE_RE = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT})+$")
PATTERN_RE = re.compile(rf"^(\*|({_SEGMENT}|\*)(\.({_SEGMENT}|\*))+)$")

TYPE_RULE = (
    "lowercase segments of letters, digits and underscores, separated by dots, "
    "like 'person.created' (at most 100 characters)"
)
PATTERN_RULE = "an event type like 'person.created', or with '*' segments like 'person.*' or '*'"
OPERATIONAL_PREFIX = "herald."


def is_valid_type(name: object) -> bool:
    # fullmatch: `$` alone would also accept a trailing newline.
    return isinstance(name, str) and len(name) <= MAX_TYPE_LENGTH and bool(TYPE_RE.fullmatch(name))


def is_valid_pattern(pattern: object) -> bool:
    return (
        isinstance(pattern, str)
        and len(pattern) <= MAX_TYPE_LENGTH
        and bool(PATTERN_RE.fullmatch(pattern))
    )


def is_operational(event_type: str) -> bool:
    return event_type.startswith(OPERATIONAL_PREFIX)


def matches(pattern: str, event_type: str) -> bool:
    if is_operational(event_type) and not pattern.startswith(OPERATIONAL_PREFIX):
        # Opt-in: a catch-all endpoint written for the application's events
        # should not start receiving Herald's reports about other endpoints.
        return False
    if pattern == "*":
        return True
    wanted = pattern.split(".")
    actual = event_type.split(".")
    if wanted[-1] == "*":
        if len(actual) < len(wanted):
            return False
        actual = actual[: len(wanted) - 1]
        wanted = wanted[:-1]
    elif len(actual) != len(wanted):
        return False
    return all(w in ("*", a) for w, a in zip(wanted, actual, strict=True))


def matches_any(patterns: list[str], event_type: str) -> bool:
    return any(matches(pattern, event_type) for pattern in patterns)

"""Event type names and the subscription patterns that select them.

A type is `resource.action` (two or more lowercase segments separated by
dots). A pattern is a type, or has `*` segments: `*` stands for exactly one
segment, except in last place where it stands for one or more, so
`person.*` matches `person.created` and `*.*` or `*` match every type.
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


def is_valid_type(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_TYPE_LENGTH and bool(TYPE_RE.match(name))


def is_valid_pattern(pattern: object) -> bool:
    return (
        isinstance(pattern, str)
        and len(pattern) <= MAX_TYPE_LENGTH
        and bool(PATTERN_RE.match(pattern))
    )


def matches(pattern: str, event_type: str) -> bool:
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

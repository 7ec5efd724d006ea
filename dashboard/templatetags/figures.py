"""How counts read on the pages where a label alone could mislead."""

from dataclasses import dataclass

from django import template

register = template.Library()


@dataclass(frozen=True)
class AttemptCounts:
    """A delivery's attempts: those of its retry schedule out of the most it
    allows, and those people asked for on top (retries, resends)."""

    scheduled: int
    allowed: int
    manual: int

    def __str__(self) -> str:
        if not self.manual:
            return f"{self.scheduled} of {self.allowed}"
        return f"{self.scheduled} of {self.allowed} scheduled, +{self.manual} manual"


@register.simple_tag
def attempt_counts(delivery, max_attempts: int) -> AttemptCounts:
    """`{% attempt_counts delivery webhook.max_attempts as counts %}`: prints
    "3 of 3 scheduled, +2 manual" where the total would read "5 of 3"."""
    manual = delivery.manual_attempts
    scheduled = max(0, delivery.attempts - manual)
    # A max lowered since the attempts were made must not read "5 of 3" either.
    return AttemptCounts(scheduled, max(max_attempts, scheduled), manual)

"""The error of the de-identification layer."""

from __future__ import annotations


class DeidPolicyError(ValueError):
    """A de-identification policy or key that cannot be used; the message says what to fix."""

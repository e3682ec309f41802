"""How exceptions are recorded on attempts and runs."""

from __future__ import annotations

import traceback

STACK_LIMIT = 16_000


def error_dict(error: BaseException, *, code: str = "") -> dict[str, str]:
    """A stored error for an exception: type, message, traceback (clipped) and code."""
    stack = "".join(traceback.format_exception(error))
    return {
        "type": type(error).__name__,
        "message": str(error),
        "stack": stack[-STACK_LIMIT:],
        "code": code,
    }

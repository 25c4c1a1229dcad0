"""closedloop's error tree: every failure says what happened to the user and whose fault it is.

::

    ClosedloopError                 .user_message, .blame
     ├── ConfigError                blame "config": a file, key, credential or mapping is wrong
     │    ├── AuthError             the remote refused our credentials
     │    └── MappingError          a field mapping is invalid (.path, .line, .field)
     ├── TransientError             blame "transient": retry later (5xx, timeouts, resets)
     │    └── RateLimited           the remote asked us to slow down (.retry_after seconds)
     ├── DeliveryUncertain          blame "transient": the request may or may not have arrived
     ├── BudgetExhausted            blame "remote": a daily API allowance is (nearly) used up
     ├── RemoteError                blame "remote": the remote answered something unusable
     └── RecordError                one record failed; skip it, dead-letter it, keep going

``str(error)`` is the user message. Messages are written to be safe to log: they never
contain a secret value (credentials are redacted before an error is built).

This tree is the vocabulary of the whole project, not only of the adapters: the config loader
raises :class:`ConfigError` for a bad ``closedloop.toml``, the mappings raise
:class:`MappingError`, the reports refuse a bad spend file with :class:`ConfigError`. It lives
here because adapters may import nothing outside ``adapters``; it imports nothing itself, so
every package can use it without reaching any remote system's code.
"""
from __future__ import annotations


class ClosedloopError(Exception):
    """Base class: a failure with a message meant for the person running closedloop."""

    blame = "internal"

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class ConfigError(ClosedloopError):
    """Something the operator configured is wrong; retrying will not help."""

    blame = "config"


class AuthError(ConfigError):
    """The remote system refused the configured credentials."""


class MappingError(ConfigError):
    """A field mapping cannot be used; names the mapping file, line and field at fault."""

    def __init__(self, message: str, *, path: str = "", line: int | None = None, field: str = "") -> None:
        where = path + (f":{line}" if line else "")
        super().__init__(f"{where}: {message}" if where else message)
        self.path, self.line, self.field = path, line, field


class TransientError(ClosedloopError):
    """A temporary failure (network, 5xx, lock contention): the same call may succeed later."""

    blame = "transient"


class RateLimited(TransientError):
    """The remote asked us to slow down; ``retry_after`` is how long to wait, if it said."""

    def __init__(self, user_message: str, retry_after: float | None = None) -> None:
        super().__init__(user_message)
        self.retry_after = retry_after


class DeliveryUncertain(ClosedloopError):
    """The connection failed after the request left: the remote may have acted on it.

    Deliberately not a :class:`TransientError`, so the retry policy does not resend it: for a
    request the remote does not de-duplicate (a GA4 refund), resending could count it twice.
    """

    blame = "transient"


class BudgetExhausted(ClosedloopError):
    """A daily API allowance is used up (or closedloop's configured share of it)."""

    blame = "remote"


class RemoteError(ClosedloopError):
    """The remote system answered in a way closedloop cannot use (an API contract problem)."""

    blame = "remote"


class RecordError(ClosedloopError):
    """One record could not be processed; the rest of the batch goes on."""

    blame = "remote"

    def __init__(self, user_message: str, *, record_id: str = "", code: str = "") -> None:
        super().__init__(user_message)
        self.record_id, self.code = record_id, code

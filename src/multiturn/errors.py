"""The error hierarchy. Every failure multiturn reports is one of these.

    MultiturnError
    ├── InvalidInput            bad input from the caller (empty message, bad parameter)
    │   ├── ContextTooLong      the prompt does not fit the model's window
    │   └── UnsupportedContent  a part the model cannot read (an image for a text model)
    ├── NotFound                a conversation, item or model that does not exist
    │   └── ModelNotFound       no model or alias of that name
    ├── Unauthorized            a missing or wrong API key
    ├── RateLimited             too many requests; ``retry_after`` seconds
    ├── ModelError              the model cannot be used
    │   ├── ModelUnavailable    not pulled, missing file, missing optional dependency
    │   └── ModelIntegrityError a file whose SHA-256 or size does not match the catalogue
    ├── StoreError              the database cannot be opened, migrated or written
    └── BackendError            the backend failed while generating
        └── UpstreamError       an upstream server failed or answered with an error

Foreign exceptions are mapped once, where they enter (``raise ... from exc``). The CLI turns
each into one line on stderr and an exit code; protocols map them to HTTP statuses.
"""

from __future__ import annotations


class MultiturnError(Exception):
    """Base class of every error multiturn raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(MultiturnError):
    exit_code = 2


class InvalidParameter(InvalidInput):
    """An ``InvalidInput`` that names the offending request field and the wire error code."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid_parameter_error") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ContextTooLong(InvalidInput):
    def __init__(self, message: str, *, prompt_tokens: int, limit: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.limit = limit


class UnsupportedContent(InvalidInput):
    pass


class NotFound(MultiturnError):
    pass


class ModelNotFound(NotFound):
    pass


class Unauthorized(MultiturnError):
    pass


class RateLimited(MultiturnError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelError(MultiturnError):
    pass


class ModelUnavailable(ModelError):
    pass


class ModelIntegrityError(ModelError):
    pass


class StoreError(MultiturnError):
    pass


class BackendError(MultiturnError):
    pass


class UpstreamError(BackendError):
    """An upstream answered with an error (``status`` is its HTTP status, or None when it
    could not be reached) or broke off."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class MissingDependency(ModelUnavailable):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"the optional dependency {module!r} is not installed: pip install 'multiturn[{extra}]'")

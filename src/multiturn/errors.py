"""The error hierarchy. Every failure multiturn reports is one of these.

    MultiturnError
    ├── InvalidInput            bad input from the caller (empty message, bad parameter)
    │   └── ContextTooLong      the prompt does not fit the model's window
    ├── NotFound                a conversation, item or model that does not exist
    ├── ModelError              the model cannot be used
    │   ├── ModelUnavailable    not pulled, missing file, missing optional dependency
    │   └── ModelIntegrityError a file whose SHA-256 or size does not match the catalogue
    ├── StoreError              the database cannot be opened, migrated or written
    └── BackendError            the backend failed while generating

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


class ContextTooLong(InvalidInput):
    def __init__(self, message: str, *, prompt_tokens: int, limit: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.limit = limit


class NotFound(MultiturnError):
    pass


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


class MissingDependency(ModelUnavailable):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"the optional dependency {module!r} is not installed: pip install 'multiturn[{extra}]'")

"""The errors the package raises on purpose.

Every check of a user's input, file or configuration raises a subclass of `SPGNetError`;
the `spgnet` command prints those in one line (exit code 2) and lets any other exception,
a bug, show its traceback. `InvalidInputError` subclasses `ValueError`, so code written
against the built-in type keeps working.

Example:

```python
from spgnet_keras.errors import InvalidInputError, SPGNetError

try:
    raise InvalidInputError("num_classes must be at least 2, got 1")
except SPGNetError as error:
    print(f"error: {error}")
```
"""


class SPGNetError(Exception):
    """Base class of the errors the package raises on purpose (bad input, not a bug)."""


class InvalidInputError(SPGNetError, ValueError):
    """An argument, file content or configuration value that the package refuses."""

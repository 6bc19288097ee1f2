"""Errors a user can act on.

Anything raised as :class:`ReconError` is shown by the CLI as one line, without a
traceback, and exits with code 2 (bad input or usage). Any other exception is a bug
or an environment failure and exits with code 1.
"""


class ReconError(Exception):
    """A failure with a message meant for the user (one line, says what to do)."""

    exit_code = 2


class InputError(ReconError, ValueError):
    """The input (a file, an array, an option) cannot be used as given."""


class ReconWarning(RuntimeWarning):
    """The input was changed to be usable (rows dropped, values clipped); the run goes on."""


class Terminated(BaseException):
    """SIGTERM arrived. Raised like KeyboardInterrupt (not an Exception, so no ``except
    Exception`` swallows it) so that cleanups run on the way out; the CLI exits 143."""

    exit_code = 143

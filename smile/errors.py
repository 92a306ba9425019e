"""Errors the command line reports as a short message instead of a traceback."""


class SmileError(Exception):
    """A problem with the user's input (data, options, checkpoint) that has a clear fix."""


class DataError(SmileError, ValueError):
    """The dataset on disk is missing, incomplete or malformed."""


class CheckpointError(SmileError, ValueError):
    """A checkpoint that cannot be used: missing, not ours, truncated or incompatible."""


class OptionError(SmileError, ValueError):
    """An option's value that the software does not accept (the message lists what it does)."""


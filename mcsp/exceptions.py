"""Exceptions raised by mcsp; each message names the file, the problem and the fix."""


class McspError(Exception):
    """Base class of all mcsp errors."""


class ConfigError(McspError):
    """A config, cohort or experiment file is malformed."""


class CohortError(McspError):
    """A cohort (BIDS folder) cannot be used as a whole."""

"""closedloop's daemon, jobs and command line."""

__version__ = "0.1.0"

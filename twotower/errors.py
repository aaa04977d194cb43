"""Exit codes and error types of twotower. No TensorFlow here: the CLI and every stage import it cheaply.

Exit codes of the ``twotower`` command:

- ``EXIT_OK`` 0: success;
- ``EXIT_NOT_BLESSED`` 1: the run finished but the model was not blessed, so nothing was pushed;
- ``EXIT_BAD_INPUT`` 2: bad config, flags, or data that cannot be read; the message names the file and field;
- ``EXIT_REJECTED`` 3: the data was read but rejected by its contract (quarantine limit, anomalies, drift);
- ``EXIT_FAILED`` 4: the command failed on an unexpected error (a bug, a lost disk); the traceback says where.
  Not 1, which Python gives an uncaught exception: a script must not mistake a crash for "not blessed".
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_NOT_BLESSED = 1
EXIT_BAD_INPUT = 2
EXIT_REJECTED = 3
EXIT_FAILED = 4


class ConfigError(ValueError):
    """A profile is missing a field or has a field of the wrong type or value."""


class DataError(ValueError):
    """A CSV file or row that cannot be read; the message names file and field."""


class QuarantineLimitExceeded(DataError):
    """More of a file's rows were quarantined than the profile's contract allows."""


class ContractViolation(DataError):
    """The data broke the contract schema, or drifted beyond a threshold without being accepted."""


class MovieLensError(RuntimeError):
    """The MovieLens wheel cannot be obtained, or a file inside it is not as expected."""


REJECTED = (QuarantineLimitExceeded, ContractViolation)  # exit EXIT_REJECTED
BAD_INPUT = (FileNotFoundError, ValueError, MovieLensError)  # exit EXIT_BAD_INPUT (ConfigError, DataError too)

"""What every benchmark JSON ends with: the machine, its load, the command; written and printed."""

import json
import os
import platform
import sys
from typing import Any, Dict

import tensorflow as tf


def write_report(path: str, report: Dict[str, Any]) -> None:
    """Adds ``machine``, ``load_average`` and ``command`` to ``report``, writes it to ``path`` and prints it."""
    report = dict(report)
    report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__}
    report["load_average"] = os.getloadavg()
    report["command"] = " ".join(["python"] + sys.argv)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))

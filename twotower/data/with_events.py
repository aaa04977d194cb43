"""``twotower data with-events``: a data directory whose interactions file has the server's logged events appended.

The event log of ``twotower serve`` (``DIR/events-YYYY-MM-DD.csv``) has the profile's interactions
columns, in its own order and always comma-separated; the data set's interactions file has its
own header order, delimiter and encoding. This writes ``out_dir`` with the users and items files
copied and the interactions file copied with every logged row appended in the file's own layout
(columns the log lacks left empty), so ``twotower run --data out_dir`` trains on the events too.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import re
import shutil
from typing import IO, List

from twotower.config import Profile

EVENT_FILE = re.compile(r"^events-\d{4}-\d{2}-\d{2}\.csv$")


@dataclasses.dataclass(frozen=True)
class WithEvents:
    """What was written: the new data directory, the event files read and the rows appended."""

    out_dir: str
    event_files: List[str]
    rows: int


def _open(path: str, mode: str, encoding: str) -> IO:
    if path.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding=encoding, newline="")
    return open(path, mode, encoding=encoding, newline="")


def _line(fields: List[str], delimiter: str) -> str:
    if len(delimiter) > 1:  # multi-character delimiters are split as they are, with no quoting
        return delimiter.join(fields) + "\n"
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(fields)
    return out.getvalue()


def with_events(profile: Profile, data_dir: str, events_dir: str, out_dir: str) -> WithEvents:
    """Writes ``out_dir`` (module docstring); returns what it wrote. Raises ValueError naming a file at fault."""
    d = profile.data
    if os.path.abspath(out_dir) == os.path.abspath(data_dir):
        raise ValueError(f"--out {out_dir}: must differ from --data (the data directory is kept as it is)")
    files = sorted(os.path.join(events_dir, n) for n in os.listdir(events_dir) if EVENT_FILE.match(n))
    if not files:
        raise ValueError(f"--events {events_dir}: no events-YYYY-MM-DD.csv files (the serving dir's .events/?)")
    os.makedirs(out_dir, exist_ok=True)
    for name in (d.users, d.items):
        shutil.copyfile(os.path.join(data_dir, name), os.path.join(out_dir, name))
    source, target = os.path.join(data_dir, d.interactions), os.path.join(out_dir, d.interactions)
    with _open(source, "r", d.encoding) as f:
        header_line = f.readline()
    header = [c.strip() for c in (header_line.rstrip("\r\n").split(d.delimiter) if len(d.delimiter) > 1 else
                                  next(csv.reader([header_line], delimiter=d.delimiter)))]  # fmt: skip
    rows = 0
    with _open(source, "r", d.encoding) as src, _open(target, "w", d.encoding) as out:
        last = ""
        for line in src:
            out.write(line)
            last = line
        if last and not last.endswith("\n"):
            out.write("\n")
        for path in files:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = sorted(set(reader.fieldnames or []) - set(header))
                if missing:
                    raise ValueError(f"{path}: columns {missing} are not in {source}'s header {header}")
                for row in reader:
                    out.write(_line([row.get(c) or "" for c in header], d.delimiter))
                    rows += 1
    return WithEvents(out_dir, files, rows)

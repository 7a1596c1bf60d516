"""Files written atomically, and JSON and CSV read back with one-line errors.

Every file is written to a temporary name in the same folder and renamed into
place, so a crash during a write leaves the previous version whole.
"""

import contextlib
import csv
import io
import json
import os

from kgen.errors import RunError


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`, renamed to `path` on success.

    The temporary name keeps the extension, so writers that pick a format by
    extension (`model.save`, `savefig`) work. On an exception the temporary
    file is removed and `path` is untouched.

    Example:

    >>> with atomic_path("run/model.keras") as tmp:
    ...     model.save(tmp)
    """
    folder, base = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{base}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename in (None, tmp):  # name the file the user knows (a full disk in a writer names none)
            e.filename = os.fspath(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


# the largest JSON file kgen reads (a run's config.json is about 2 kB, a checkpoint's state.json a few kB)
MAX_JSON_BYTES = 16 << 20


def read_json(path):
    """The JSON value in `path`; `ValueError` for a file over `MAX_JSON_BYTES` or nested too deep for Python."""
    with open(path, encoding="utf-8") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(f"it holds {size:,} bytes, and kgen reads JSON files of at most {MAX_JSON_BYTES:,}")
        try:
            return json.loads(f.read(MAX_JSON_BYTES + 1))
        except RecursionError:
            raise ValueError("it is nested too deep to be read") from None


def read_json_dict(path, what):
    """A JSON object read from `path`, or a one-line `RunError` naming the file.

    Args:
        path: the file.
        what: what the file is, for the message ("the run's config").
    """
    try:
        obj = read_json(path)
    except UnicodeDecodeError:
        raise RunError(f"{path} cannot be read: it is not UTF-8 text; {what} is damaged.") from None
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise RunError(f"{path} cannot be read ({reason}); {what} is damaged.") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path} holds a JSON {type(obj).__name__}, not an object; {what} is damaged.")
    return obj


def write_csv(path, rows):
    """Writes a list of dicts as CSV (columns in first-seen order) atomically."""
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def read_csv(path):
    """Reads a CSV written by `write_csv`; numbers come back as ints or floats."""
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        pass
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)

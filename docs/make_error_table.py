"""Prints the bad-input table of docs/errors.md from the cases that tests/test_bad_inputs.py checks.

Usage: python docs/make_error_table.py > /tmp/table.md  (then paste it into docs/errors.md)
"""

import importlib.util
import os
import pathlib
import re
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")
root = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bad_inputs", root / "tests" / "test_bad_inputs.py")
cases = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cases)

with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    runs = tmp / "runs"
    for model in ("vae", "cgan"):
        cases.invoke("train", model, "--epochs", 1, "--limit", 64, "--offline", "--out", runs, "--batch-size", 32)
    print("| bad input | command | exit | what kgen prints |")
    print("| --- | --- | --- | --- |")
    for i, (what, args, _) in enumerate(cases.CASES):
        case_dir = tmp / f"case{i}"
        case_dir.mkdir()
        argv = [str(a) for a in args(case_dir, runs)]
        result = cases.invoke(*argv)
        line = next(l for l in result.output.splitlines() if l.startswith("Error"))
        shown = " ".join(
            "RUN" if "/runs/" in a or a.endswith(("corrupt", "modelless", "damaged", "foo")) else "FILE" if a.endswith((".png", ".jpg", ".npy"))
            else "DIR" if a.startswith(str(tmp)) else a
            for a in argv
        )
        line = re.sub(r"/\S*/(runs|case\d+)(/[^\s;:,']*)?", "PATH", line).replace("|", "\\|")
        print(f"| {what} | `kgen {shown}` | {result.exit_code} | {line} |")
    sys.stdout.flush()

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


# rows checked by tests/test_reliability.py (they need a failing disk, a signal or a diverging run)
RELIABILITY_ROWS = [
    "| full disk while writing | `kgen train ae ...` (simulated ENOSPC) | 1 | Error: No space left on device while writing PATH; "
    "the run keeps its last checkpoint. Free some space, then continue with: kgen resume RUN |",
    "| full disk before the first checkpoint | `kgen train ae ...` (simulated ENOSPC) | 1 | Error: No space left on device while writing "
    "PATH; the run had saved no checkpoint yet, so there is nothing to resume. Free some space, then train again (and delete RUN). |",
    "| a checkpoint rewound by an epoch (state.json and its model file renamed) | `kgen resume RUN` | 1 | Error: RUN/checkpoint/state.json "
    "is damaged: it says epoch 1, step 0 (4 steps), and its model took 12; train the run anew. |",
    "| loss becomes NaN | `kgen train ...` | 3 | Error: The loss became nan at epoch E, step S; the checkpoint of epoch E-1 "
    "is kept. Lower --learning-rate and train again, or resume the checkpoint with `kgen resume RUN`. |",
    "| weights become NaN in an epoch's last step | `kgen train ...` | 3 | Error: The weights became non-finite (NaN or inf "
    "in VARIABLE) at the end of epoch E; the checkpoint of epoch E-1 is kept. Lower --learning-rate and train again, "
    "or resume the checkpoint with `kgen resume RUN`. |",
    "| weights become NaN before any checkpoint (gan) | `kgen train gan ...` | 3 | Error: The weights became non-finite "
    "(NaN or inf in VARIABLE) at the end of epoch 1; no checkpoint was saved. Lower --d-learning-rate and "
    "--g-learning-rate and train again. |",
    "| Ctrl-C or SIGTERM mid-epoch | `kgen train ...` | 130 | Error: SIGINT at epoch E, step S: checkpoint saved. Resume with: "
    "kgen resume RUN |",
    "| Ctrl-C or SIGTERM during the end-of-run figures | `kgen train ...` | 130 | Error: SIGINT after epoch E, before model.keras "
    "was written: the checkpoint of epoch E is saved. Finish with: kgen resume RUN |",
    "| a second `--resume` of a run being trained | `kgen train --resume RUN` | 1 | Error: RUN is being trained by "
    "another process; wait for it to finish or stop it. |",
]


def short(match):
    """A path of a message as the table shows it: RUN/... inside a run, DIR/... inside a data folder, else PATH."""
    path = match.group(0)
    for marker in ("/damaged", "/foo", "/corrupt", "/modelless"):
        if marker in path:
            return "RUN" + path.split(marker, 1)[1]
    if "/runs/" in path:
        parts = path.split("/runs/", 1)[1].split("/")
        return "RUN" + "".join("/" + p for p in parts[2:])
    if "/data" in path:
        return "DIR" + path.split("/data", 1)[1]
    return "PATH"


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
            "RUN" if "/runs/" in a or a.endswith(("corrupt", "modelless", "damaged", "foo")) else "FILE" if a.endswith((".png", ".jpg", ".npy", ".npz"))
            else "DIR" if a.startswith(str(tmp)) else a
            for a in argv
        )
        line = re.sub(r"/\S*/(runs|case\d+)(/[^\s;:,'`]*)?", short, line).replace("|", "\\|")
        shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in shown)  # DEL, U+2028, ... as escapes
        line = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)
        print(f"| {what} | `kgen {shown}` | {result.exit_code} | {line} |")
    for row in RELIABILITY_ROWS:
        print(row)
    sys.stdout.flush()

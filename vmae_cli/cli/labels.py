"""``vmae labels``: the model's labels as CSV, a start for a label map."""

from __future__ import annotations

import sys

# No torch, transformers or cv2 at import time: `vmae --help` must stay fast.
from ..model import DEFAULT_MODEL
from .common import ModelOpt, RevisionOpt, app
from .errors import fail


@app.command()
def labels(model: ModelOpt = DEFAULT_MODEL, revision: RevisionOpt = None) -> None:
    """Print the model's labels as CSV (index,label): a start for a label map."""
    import csv

    from ..model import read_labels

    try:
        names = read_labels(model, revision=revision)
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise fail(exc, False) from None
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["index", "label"])
    out.writerows(names.items())

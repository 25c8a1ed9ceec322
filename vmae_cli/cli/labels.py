"""``vmae labels``: the model's labels as CSV, a start for a label map."""

from __future__ import annotations

import sys

# No torch, transformers or cv2 at import time: `vmae --help` must stay fast.
from ..choices import DEFAULT_MODEL
from .common import EscapeFormulasOpt, ModelOpt, RevisionOpt, app
from .errors import fail


@app.command()
def labels(
    model: ModelOpt = DEFAULT_MODEL,
    revision: RevisionOpt = None,
    escape_formulas: EscapeFormulasOpt = True,
) -> None:
    """Print the model's labels as CSV: a start for a label map.

    One row per label: index,label.
    """
    from ..formats import write_csv_table
    from ..model import read_labels

    try:
        names = read_labels(model, revision=revision)
    except Exception as exc:  # noqa: BLE001 - mapped by _exit_for, one table
        raise fail(exc, False) from None
    write_csv_table(sys.stdout, ["index", "label"], names.items(), escape_formulas=escape_formulas)

"""What checking an OpenVINO cache entry costs when it is read, against converting the model.

vmae checks every file of a cached conversion against the sha256 its manifest records before
OpenVINO reads it (``openvino_backend.entry_damage``). This measures, on a ViT-B (the
default model's shape, random weights, ``make_model.py``) in a cache folder of its own:

- the first load: conversion, writing the entry (its manifest included), checking and
  compiling it, as a first ``vmae classify`` does (the imports of the conversion included);
- the conversion alone, once more (``openvino_backend.convert``, its imports done);
- the check alone, with the entry's files in the page cache (the usual case: OpenVINO maps
  the same files right after) and, where the kernel honours ``POSIX_FADV_DONTNEED``, with
  them dropped from it first (the disk read is then shared with OpenVINO's own);
- a load from the cache (check and compile), as every later run does, and the check's share
  of it;
- sha256 alone over the same bytes in memory (the CPU cost, without reading files).

    python benchmarks/openvino_cache_verify.py [--model MODEL_DIR] [--repeat 5] [--json F]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, machine_summary, print_table, write_json


def _drop_from_page_cache(folder: Path) -> bool:
    """Ask the kernel to drop ``folder``'s files from the page cache; False where it cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def measure(model_dir: Path, repeat: int, cache_dir: Path) -> dict[str, Any]:
    """The figures, for ``model_dir`` converted into ``cache_dir`` (empty)."""
    os.environ["VMAE_CACHE_DIR"] = str(cache_dir)
    from vmae_cli import openvino_backend as ovb
    from vmae_cli.model import load_model
    from vmae_cli.provenance import model_files

    def load() -> Any:
        return load_model(
            str(model_dir),
            device="cpu",
            dtype="float32",
            backend="openvino",
            on_notice=lambda line: print(f"  notice: {line}", file=sys.stderr),
            on_warning=lambda line: print(f"  warning: {line}", file=sys.stderr),
        )

    first_s, lm = _timed(load)
    entry = lm.model.entry
    assert entry is not None, "the conversion was not cached"
    key = ovb.cache_key(model_files(str(model_dir)), lm.frames_per_clip, lm.preprocess.crop_hw)
    sizes = {p.name: p.stat().st_size for p in entry.iterdir()}
    shape = (lm.frames_per_clip, lm.preprocess.crop_hw)
    del lm
    convert_s, converted = _timed(lambda: ovb.convert(str(model_dir), None, True, *shape))
    del converted

    warm = []
    for _ in range(repeat):
        seconds, damage = _timed(lambda: ovb.entry_damage(entry, key))
        assert damage is None, damage
        warm.append(seconds)
    cold = []
    for _ in range(repeat):
        if not _drop_from_page_cache(entry):
            break
        cold.append(_timed(lambda: ovb.entry_damage(entry, key))[0])
    cached = []
    for _ in range(repeat):
        seconds, lm = _timed(load)
        assert lm.model.entry == entry
        cached.append(seconds)
        del lm
    data = (entry / ovb.ENTRY_BIN).read_bytes()
    hash_s = min(_timed(lambda: hashlib.sha256(data).hexdigest())[0] for _ in range(repeat))
    return {
        "entry_bytes": sum(sizes.values()),
        "entry_files": sizes,
        "first_load_s": first_s,
        "convert_s": convert_s,
        "verify_warm_s": warm,
        "verify_cold_s": cold,
        "cached_load_s": cached,
        "sha256_in_memory_s": hash_s,
        "sha256_mb_per_s": len(data) / hash_s / 1e6,
    }


def report(figures: dict[str, Any]) -> None:
    """Print the figures as a table."""
    mb = figures["entry_bytes"] / 1e6
    med = statistics.median

    def row(what: str, values: list[float]) -> list[str]:
        if not values:
            return [what, "-", "-", "-"]
        return [what, f"{min(values):.3f}", f"{med(values):.3f}", f"{max(values):.3f}"]

    rows = [
        row("first load (convert, write, check, compile)", [figures["first_load_s"]]),
        row("conversion alone", [figures["convert_s"]]),
        row("check, files in the page cache", figures["verify_warm_s"]),
        row("check, files dropped from the page cache", figures["verify_cold_s"]),
        row("load from the cache (check and compile)", figures["cached_load_s"]),
        row("sha256 of model.bin in memory", [figures["sha256_in_memory_s"]]),
    ]
    print(f"entry: {mb:.1f} MB in {len(figures['entry_files'])} files")
    print_table(rows, ["seconds", "min", "median", "max"])
    warm = med(figures["verify_warm_s"])
    print(
        f"check / conversion: {warm / figures['convert_s']:.1%}; check / load from the "
        f"cache: {warm / med(figures['cached_load_s']):.1%}; sha256 "
        f"{figures['sha256_mb_per_s']:.0f} MB/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a ViT-B folder (default: made in a temp dir)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each timed step")
    parser.add_argument("--json", type=Path, help="write the figures and the machine here")
    args = parser.parse_args(argv)
    info = machine_info()
    print(machine_summary(info))
    with tempfile.TemporaryDirectory(prefix="vmae-cache-verify-") as tmp:
        model_dir = args.model
        if model_dir is None:
            from make_model import make_model

            model_dir = make_model(Path(tmp) / "vitb")
        figures = measure(model_dir, args.repeat, Path(tmp) / "cache")
    report(figures)
    if args.json:
        write_json(args.json, {"machine": info, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())

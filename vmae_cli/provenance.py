"""Which checkpoint made a row: a model's files, their hashes, and its revision.

A Hub model's revision is the commit its files were resolved to (the ``snapshots/<commit>``
folder of the Hugging Face cache). A local folder has no commit, so its revision is a hash
of the files that decide the model (its config and weights): ``sha256:`` and 16 hex digits.
Hashing 350 MB of ViT-B weights takes about a second, so file hashes are kept in a small
cache keyed by path and the file's stat (:func:`file_stamp`: size, modification and change
times, inode and device; the OpenVINO conversion cache uses the same hashes for its keys).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .errors import VmaeError

#: Where vmae keeps its caches: ``$VMAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/vmae``, else
#: ``~/.cache/vmae``.
CACHE_DIR_ENV = "VMAE_CACHE_DIR"
#: The file hashes already computed (path -> its :func:`file_stamp` then its sha256), under
#: the cache folder.
DIGESTS_FILE = "digests.json"
#: Files of a model folder that decide the model: its config, its weights (single-file or
#: sharded, safetensors or pickled torch) and, for a zero-shot model, its tokenizer (which
#: turns the text labels into what the model reads; a video classifier has none).
MODEL_FILE_PATTERNS = (
    "config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "pytorch_model*.bin",
    "pytorch_model.bin.index.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
)
#: The weight files of a Hub model, in the order transformers looks for them.
HUB_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: Bytes read at a time while hashing the model's files.
HASH_CHUNK_BYTES = 1 << 22
#: Hex digits of a folder's hash kept in its revision (64 bits: no accidental clash).
REVISION_HEX_DIGITS = 16
#: How a folder's revision starts (the Hub's is a commit hash): its files' digest follows.
FOLDER_REVISION_PREFIX = "sha256:"
#: How the Hugging Face cache names the folder of one commit's files.
_SNAPSHOT = re.compile(r"[\\/]snapshots[\\/]([0-9a-f]{40})[\\/]")


class NoWeightsError(VmaeError, FileNotFoundError):
    """A model (folder or Hub id) without weight files."""


def cache_base() -> Path:
    """The folder vmae's caches go under (see :data:`CACHE_DIR_ENV`)."""
    base = os.environ.get(CACHE_DIR_ENV)
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "vmae"


def hub_file(name: str, filename: str, *, revision: str | None, offline: bool) -> Path | None:
    """Where the file ``filename`` of the Hub model ``name`` is, fetched the way transformers
    fetches it (from the local cache only when ``offline``); ``None`` when the model has no
    such file."""
    from transformers.utils import cached_file

    path = cached_file(
        name,
        filename,
        revision=revision,
        local_files_only=offline,
        _raise_exceptions_for_missing_entries=False,
    )
    return Path(path) if path else None


def model_files(name: str, revision: str | None = None, offline: bool = True) -> list[Path]:
    """The files of model ``name`` (a folder or a Hub id) that decide it: its config and
    weights, and in a folder its tokenizer's (:data:`MODEL_FILE_PATTERNS`). For a Hub id the
    files are fetched the way transformers fetches them (from the local cache when
    ``offline``). Raises :class:`NoWeightsError` when no weights are found.
    """
    if os.path.isdir(name):
        folder = Path(name)
        found = sorted({p for pattern in MODEL_FILE_PATTERNS for p in folder.glob(pattern)})
    else:

        def fetch(filename: str) -> Path | None:
            return hub_file(name, filename, revision=revision, offline=offline)

        config = fetch("config.json")
        found = [config] if config else []
        for filename in HUB_WEIGHT_FILES:
            weights = fetch(filename)
            if weights is None:
                continue
            found.append(weights)
            if filename.endswith(".index.json"):
                shards = json.loads(weights.read_text(encoding="utf-8")).get("weight_map", {})
                found += [p for p in map(fetch, sorted(set(shards.values()))) if p]
            break
    if not any(p.name != "config.json" for p in found):
        raise NoWeightsError(f"no weight files found for model {name!r}")
    return found


def file_stamp(st: os.stat_result) -> list[int]:
    """What says a file is unchanged without reading it: size, modification time, change
    time, inode and device. The modification time alone is not enough: weights rewritten in
    place with their old mtime restored (``touch -r``, ``cp -p``, an unpacked archive) kept
    their old hash, conversion and ``model_revision``; the change time cannot be set back,
    and a file replaced by another has another inode."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's content, hex, read now (about 1.4 GB/s where the CPU has SHA
    instructions)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """The sha256 of a file's content, hex; remembered by path and :func:`file_stamp`
    (:data:`DIGESTS_FILE`), so that an unchanged file is read once."""
    path = Path(path)
    stamp = file_stamp(path.stat())
    key = os.path.realpath(path)
    known = _read_digests()
    entry = known.get(key)
    # An entry written before the stamp had all its fields has fewer and is hashed again.
    if isinstance(entry, list) and len(entry) == len(stamp) + 1 and entry[:-1] == stamp:
        return str(entry[-1])
    value = sha256_file(path)
    known[key] = [*stamp, value]
    _write_digests(known)
    return value


def model_revision(name: str, config_path: str | os.PathLike[str] | None = None) -> str:
    """The revision rows record for model ``name``: the Hub commit of its config
    (``config_path``, as resolved in the Hugging Face cache), or for a folder ``sha256:`` and
    the first :data:`REVISION_HEX_DIGITS` hex digits of a hash over its files' names and
    hashes; ``""`` when neither is known (a folder without weights fails to load anyway)."""
    if not os.path.isdir(name):
        found = _SNAPSHOT.search(os.fspath(config_path or ""))
        return found.group(1) if found else ""
    try:
        files = model_files(name)
    except NoWeightsError:
        return ""
    combined = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        combined.update(f"{path.name}\0{file_digest(path)}\n".encode())
    return FOLDER_REVISION_PREFIX + combined.hexdigest()[:REVISION_HEX_DIGITS]


def _read_digests() -> dict[str, list]:
    try:
        with open(cache_base() / DIGESTS_FILE, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_digests(known: dict[str, list]) -> None:
    """Write the digest cache aside, then rename it into place; a cache that cannot be
    written only costs hashing again next time."""
    folder = cache_base()
    tmp = folder / f".{DIGESTS_FILE}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(known), encoding="utf-8")
        os.replace(tmp, folder / DIGESTS_FILE)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass

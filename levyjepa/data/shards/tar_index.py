"""Random access into local tar shards: which shards, which samples, where their bytes are.

**Layout** (WebDataset's): a shard is a plain, uncompressed tar file. Consecutive members that
share a *key* (the member's name up to the first dot of its file name) form one sample; the
rest of the name, its *extension*, names the field: ``00000017_dog.jpg`` and
``00000017_dog.cls`` are the image and the label of sample ``00000017_dog``. Names are split
with webdataset's own rule (:func:`webdataset.tariterators.base_plus_ext`), and members whose
file name starts with ``__`` (WebDataset's metadata) or has no extension are left out, as
webdataset's reader leaves them out.

**Why an index of offsets** rather than webdataset's streaming pipeline: the data sources read
shards as map-style datasets, so the determinism, once-per-epoch coverage and exact mid-epoch
resume come from the same machinery as for a folder of files (the epoch-seeded
:class:`~levyjepa.data.loading.sampling.EpochShuffleSampler`, Accelerate's batch slicing across
processes, views seeded per ``(seed, epoch, index)``); a streaming pipeline would need its own
shard splitting per process and worker and could not resume inside an epoch. Webdataset's
indexed reader (``wids``) is no part of webdataset 1.0 (it left the package), needs a JSON
shard list with per-shard sample counts, and its tar parser neither reads PAX headers nor
survives a shard cut inside a header. The index is therefore read with the standard library's
:mod:`tarfile` (it seeks over the data, reading the 512-byte headers only, and reads the small
label members), and an item's bytes are read with one ``pread`` at their offset.

**Damaged shards.** A shard that does not open as a tar file is reported and left out
(``on_error: skip``) or stops the build with one line (``raise``). A shard cut short
(a copy interrupted, a full disk) keeps every sample before the cut: the samples whose bytes
run past the end stay items and fail when read, so they are skipped and counted in
``data/skipped_files`` like any unreadable file (:mod:`levyjepa.data.loading.skipped_files`);
the shard is reported in one line (``skip``) or stops the build (``raise``). Members after the
cut cannot be known, so they are neither read nor counted.
"""

from __future__ import annotations

import importlib
import json
import os
import tarfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional, Union

import numpy as np

from levyjepa.core.errors import ConfigError, UnreadableFile
from levyjepa.data.loading.skipped_files import report_skipped

ShardSpec = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
"""Shards as given: a folder, a shard, a brace pattern (``train-{000000..000009}.tar``) or a
list of those."""

CLASSES_FILE = "classes.json"
"""The sidecar beside the shards naming the classes, ``{"classes": [name of label 0, ...]}``."""

COMPRESSED = (".gz", ".tgz", ".bz2", ".xz", ".zst")
"""Endings of compressed shards, which cannot be read by offset."""

OPEN_SHARDS = 16
"""Shard files a process keeps open at once (the least recently read is closed)."""


def webdataset_module(name: str) -> Any:
    """``webdataset.<name>``, imported on use; a one-line ConfigError saying how to install it."""
    try:
        return importlib.import_module(f"webdataset.{name}")
    except ImportError:
        raise ConfigError("tar shards need the 'webdataset' package: pip install "
                          "'levyjepa[shards]'") from None


def expand_shards(spec: ShardSpec, *, key: str, prefix: Optional[str] = None,
                  exclude: Optional[str] = None) -> list[Path]:
    """The shard files ``spec`` names, in order.

    Args:
        spec: A folder, a ``.tar`` file, a brace pattern or a list of those.
        key: The recipe key that gave ``spec`` (``data.root``), named in messages.
        prefix: In a folder, take the shards named ``<prefix>-*.tar`` when there are any.
        exclude: In a folder without such shards, leave out those named ``<exclude>-*.tar``.

    Returns:
        Shard paths: a folder's sorted by name, a pattern's in its expansion order.

    Raises:
        ConfigError: naming ``key`` and the missing path, an empty folder or a compressed shard.
    """
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not items:
        raise ConfigError(f"{key}: an empty list of shards")
    expand = webdataset_module("shardlists").expand_urls  # brace patterns, as webdataset reads
    paths: list[Path] = []
    for item in items:
        for name in expand(os.fspath(item)):
            path = Path(name).expanduser()
            if path.is_dir():
                paths += _folder_shards(path, key=key, prefix=prefix, exclude=exclude)
            elif path.name.endswith(COMPRESSED):
                raise ConfigError(f"{key}: shard '{path}' is compressed and cannot be read by "
                                  "offset; write plain .tar shards (python -m "
                                  "levyjepa.data.shards)")
            elif not path.is_file():
                raise ConfigError(f"{key}: shard '{path}' does not exist (give a folder of "
                                  "*.tar, a pattern such as train-{000000..000009}.tar or a "
                                  "list)")
            else:
                paths.append(path)
    return paths


def _folder_shards(folder: Path, *, key: str, prefix: Optional[str],
                   exclude: Optional[str]) -> list[Path]:
    tars = sorted(p for p in folder.glob("*.tar") if p.is_file())
    if prefix is not None and any(p.name.startswith(f"{prefix}-") for p in tars):
        return [p for p in tars if p.name.startswith(f"{prefix}-")]
    if exclude is not None:
        tars = [p for p in tars if not p.name.startswith(f"{exclude}-")]
    if not tars:
        raise ConfigError(f"{key}: folder '{folder}' holds no *.tar shards (write them with "
                          "python -m levyjepa.data.shards SRC OUT)")
    return tars


def read_classes(shards: Sequence[Path]) -> Optional[list[str]]:
    """The class names of :data:`CLASSES_FILE` beside the first shard, or ``None`` without one.

    Raises:
        ConfigError: naming the file when it is not such a JSON object.
    """
    sidecar = shards[0].parent / CLASSES_FILE
    if not sidecar.is_file():
        return None
    try:
        classes = json.loads(sidecar.read_text())["classes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{sidecar}: expected {{\"classes\": [names]}}: "
                          f"{type(err).__name__}: {err}") from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ConfigError(f"{sidecar}: 'classes' must be a list of names")
    return classes


@dataclass
class ShardSamples:
    """The samples of some shards: where each one's main field is, and its label.

    One row per sample, in shard order then tar order, in NumPy arrays (loader workers share
    them without copying). A sample without the main field keeps its row, with size ``-1``.

    Attributes:
        shards: The shard files.
        shard: int32 ``(n,)``: the shard of each sample.
        keys: ``(n,)`` strings: each sample's key.
        fields: ``(n,)`` strings: the extension of its main field (empty when it has none).
        offsets: int64 ``(n,)``: where the main field's bytes start in the shard.
        sizes: int64 ``(n,)``: their length (``-1``: no main field).
        labels: int64 ``(n,)``: the label field's integer (``-1`` without one).
        wanted: The extensions the main field may have, in order of preference (for messages).
    """

    shards: list[str]
    shard: np.ndarray
    keys: np.ndarray
    fields: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray
    wanted: tuple[str, ...]
    _open: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _pid: int = field(default=-1, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def paths(self) -> list[str]:
        """The shard files (messages name their folder)."""
        return self.shards

    def describe(self, index: int) -> str:
        """``<shard>:<key>.<field>`` (``<shard>:<key>`` without one): item ``index`` in
        messages."""
        key, ext = self.keys[index], self.fields[index]
        return f"{self.shards[int(self.shard[index])]}:{key}.{ext}" if ext else \
            f"{self.shards[int(self.shard[index])]}:{key}"

    def read(self, index: int, error: type[UnreadableFile] = UnreadableFile) -> bytes:
        """The bytes of item ``index``'s main field.

        Raises:
            error: naming the item when it has no main field, or its bytes are cut short or
                cannot be read.
        """
        size = int(self.sizes[index])
        if size < 0:
            raise error(f"{self.describe(index)}: the sample has no {'/'.join(self.wanted)} "
                        "member")
        try:
            data = os.pread(self._handle(int(self.shard[index])).fileno(), size,
                            int(self.offsets[index]))
        except OSError as err:
            raise error(f"{self.describe(index)}: {type(err).__name__}: {err}") from None
        if len(data) < size:
            raise error(f"{self.describe(index)}: truncated shard: {len(data)} of {size} bytes")
        return data

    def _handle(self, shard: int) -> IO[bytes]:
        """The open file of ``shard`` in this process (a forked worker opens its own)."""
        if self._pid != os.getpid():  # handles inherited from the parent are not used
            self._open, self._pid = OrderedDict(), os.getpid()
        handle = self._open.pop(shard, None)
        if handle is None:
            handle = open(self.shards[shard], "rb", buffering=0)  # kept open for the next read
            if len(self._open) >= OPEN_SHARDS:
                self._open.popitem(last=False)[1].close()
        self._open[shard] = handle  # most recently read last
        return handle

    def __getstate__(self) -> dict[str, Any]:  # a pickled copy opens its own files
        return {**self.__dict__, "_open": OrderedDict(), "_pid": -1}


def index_shards(shards: Sequence[Path], *, wanted: Sequence[str], label_key: Optional[str],
                 on_error: str, key: str) -> ShardSamples:
    """Read the headers of ``shards`` into a :class:`ShardSamples`.

    Args:
        shards: The shard files, in order.
        wanted: Extensions the main field may have, in order of preference (``jpg``, ``png``).
        label_key: Extension of the integer label field (``cls``), or ``None``.
        on_error: ``skip``: a shard that does not open, or is cut short, is reported in one
            line (its readable samples stay); ``raise``: either stops with one line.
        key: The recipe key that gave the shards, named in messages.

    Raises:
        ConfigError: with ``on_error="raise"`` for a damaged shard; always when no shard
            holds a sample.
    """
    wanted = tuple(w.lower() for w in wanted)
    label_key = label_key.lower() if label_key else None
    split = webdataset_module("tariterators").base_plus_ext
    rows: list[tuple[int, str, str, int, int, int]] = []
    for s, path in enumerate(shards):
        samples, problem = _shard_samples(path, split, wanted, label_key)
        rows += [(s, *sample) for sample in samples]
        if problem is not None:
            if on_error == "raise":
                raise ConfigError(f"{key}: damaged shard '{path}': {problem}")
            kept = f" (its first {len(samples)} samples are indexed)" if samples else ""
            report_skipped("shard", f"{path}: {problem}{kept}")
    if not rows:
        raise ConfigError(f"{key}: the {len(shards)} shard(s) hold no samples (first: "
                          f"'{shards[0]}')")
    shard, keys, fields, offsets, sizes, labels = zip(*rows)
    return ShardSamples(
        shards=[os.fspath(p) for p in shards], shard=np.array(shard, dtype=np.int32),
        keys=np.array(keys, dtype=str), fields=np.array(fields, dtype=str),
        offsets=np.array(offsets, dtype=np.int64), sizes=np.array(sizes, dtype=np.int64),
        labels=np.array(labels, dtype=np.int64), wanted=wanted)


def _shard_samples(path: Path, split: Any, wanted: tuple[str, ...], label_key: Optional[str]
                   ) -> tuple[list[tuple[str, str, int, int, int]], Optional[str]]:
    """``[(key, field, offset, size, label), ...]`` of one shard and what is wrong with it."""
    samples: list[tuple[str, str, int, int, int]] = []
    current: Optional[str] = None
    members: dict[str, tarfile.TarInfo] = {}
    end = 0  # where the last member's data ends (rounded up to whole 512-byte blocks)
    try:
        file_size = path.stat().st_size
        tar = tarfile.open(path, mode="r:")  # uncompressed: random access
    except (OSError, tarfile.TarError) as err:
        return [], f"not a readable tar file ({type(err).__name__}: {err})"
    problem = None
    with tar:
        while True:
            try:
                info = tar.next()
            except (OSError, tarfile.TarError) as err:  # a header cut short, or garbage
                problem = f"{type(err).__name__}: {err} at byte {tar.offset}"
                break
            if info is None:
                break
            end = info.offset_data + -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            prefix, ext = split(info.name)
            if (not info.isreg() or prefix is None
                    or os.path.basename(info.name).startswith("__")):
                continue
            if prefix != current:  # a new sample starts
                if current is not None:
                    samples.append(_sample(tar, current, members, wanted, label_key))
                current, members = prefix, {}
                tar.members = []  # tarfile keeps every header read; the index needs none
            members.setdefault(ext.lower(), info)  # a repeated field: the first one counts
        if current is not None:
            samples.append(_sample(tar, current, members, wanted, label_key))
    if end + 2 * tarfile.BLOCKSIZE > file_size:  # data cut off, or no end-of-archive blocks
        problem = f"truncated at byte {file_size}"
    return samples, problem


def _sample(tar: tarfile.TarFile, prefix: str, members: dict[str, tarfile.TarInfo],
            wanted: tuple[str, ...], label_key: Optional[str]
            ) -> tuple[str, str, int, int, int]:
    """One sample's row: its key, main field, offset, size (``-1``: none) and label."""
    main = next((ext for ext in wanted if ext in members), "")
    offset, size = (members[main].offset_data, members[main].size) if main else (0, -1)
    label = -1
    if label_key is not None and label_key in members:
        try:
            handle = tar.extractfile(members[label_key])
            label = int(handle.read().decode("utf-8").strip()) if handle else -1
        except (OSError, tarfile.TarError, ValueError):  # cut short or not an integer
            label = -1
    return prefix, main, offset, size, label

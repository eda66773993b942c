"""The after-crash health check of a local Chroma folder.

Chroma 1.5 saves its HNSW files in place (every thousand or so writes), so a process killed during a save
leaves files that Chroma cannot load. Either every later call fails with an InternalError ("Failed to apply
logs to the hnsw segment writer", "Error loading hnsw index"), or, for some torn files, the native loader
crashes the process (SIGSEGV). The first call on the collection shows it; the crash can only be seen from
another process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from rag.errors import IndexDamagedError, StorageError

COLLECTION = "rag_chunks"
PROBE_SAMPLES = 16
_DAMAGED_EXIT = 10


def damaged(chroma_dir: Path, problem: str) -> IndexDamagedError | StorageError:
    """Why Chroma cannot read its files: a full disk (Chroma writes while it reads, to apply its log), else
    damage a killed run left."""
    from rag.storage import disk_full

    full = disk_full(chroma_dir.parent)
    if full is not None:
        return full
    return IndexDamagedError(
        f"the vector index in {chroma_dir} cannot be read ({problem}); a run killed while Chroma was "
        "saving it leaves it so: run `rag ingest` on your documents again, it rebuilds the index from the files "
        "it lists"
    )


def check_readable(collection: Any, chroma_dir: Path) -> None:
    """Raise IndexDamagedError if the first call on an opened local collection fails inside Chroma."""
    from chromadb.errors import InternalError

    try:
        collection.count()  # cheap: the first call replays Chroma's pending log anyway
    except InternalError as exc:
        release_local_clients()  # let go of the files, so that ingest can move the folder aside
        raise damaged(chroma_dir, f"Chroma: {exc}") from exc


def release_local_clients() -> None:
    """Close every embedded Chroma client of this process. Chroma shares one client per path, so without this
    a client opened after the folder was moved would still use the old, moved files."""
    if "chromadb" in sys.modules:
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()


def check_loadable_in_child(chroma_dir: Path) -> None:
    """Raise IndexDamagedError if a child process cannot load the local collection, crash included.

    For use after a killed run only (its in-progress marker is left behind): it costs a Chroma start-up,
    about 2 s. Any other failure in the child is left to the open in this process to report as it is."""
    if not chroma_dir.exists():
        return
    code = "import sys; from rag.health import probe_main; sys.exit(probe_main(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", code, str(chroma_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"},
        timeout=900,
    )
    if result.returncode < 0:
        raise damaged(chroma_dir, f"Chroma crashed loading it: {signal.Signals(-result.returncode).name}")
    if result.returncode == _DAMAGED_EXIT:
        raise damaged(chroma_dir, f"Chroma: {result.stdout.strip()}")


def probe_main(chroma_dir: str) -> int:
    """The child of `check_loadable_in_child`: 0 if the collection loads (or there is none yet) and stored
    vectors spread over it each find themselves; otherwise the problem on stdout and _DAMAGED_EXIT (or the
    crash itself). One vector was not enough: a truncated vector file passed it and failed later queries."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from chromadb.errors import ChromaError

    client = chromadb.PersistentClient(path=chroma_dir, settings=ChromaSettings(anonymized_telemetry=False))
    try:
        collection = client.get_collection(COLLECTION, embedding_function=None)
    except Exception:  # no collection yet: nothing to damage (chromadb's exception type varies by version)
        return 0
    try:
        count = collection.count()
        ids: list[str] = []
        vectors: list[Any] = []
        for offset in range(0, count, max(1, count // PROBE_SAMPLES)):
            sample = collection.get(limit=1, offset=offset, include=["embeddings"])
            ids.extend(sample["ids"])
            vectors.extend(sample["embeddings"] if sample["embeddings"] is not None else [])
        if not ids:
            return 0
        found = collection.query(query_embeddings=vectors, n_results=1, include=["distances"])
    except ChromaError as exc:
        print(exc)
        return _DAMAGED_EXIT
    # Torn vector files can also load without an error and hold zeros or garbage.
    distances = found["distances"] or [[0.0]] * len(ids)
    for chunk_id, nearest, distance in zip(ids, found["ids"], distances, strict=True):
        if nearest[0] != chunk_id and distance[0] > 1e-4:
            print(f"the stored vector of {chunk_id} is not its own nearest neighbour (found {nearest[0]})")
            return _DAMAGED_EXIT
    return 0

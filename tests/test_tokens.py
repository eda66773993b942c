from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_encoding_loads_from_bundled_files_without_network(tmp_path: Path) -> None:
    # A fresh cache and a proxy that refuses everything: any download attempt would fail loudly.
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "cache"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    code = "from rag.tokens import encoding; print(encoding().encode('hello world'))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # cl100k_base's published ids for "hello world"
    assert result.stdout.strip() == "[15339, 1917]"
    assert any((tmp_path / "cache").iterdir())

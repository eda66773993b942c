#!/usr/bin/env bash
# Set up, then run the linters and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev,ocr  # the OCR extra too: its test reads a real page
export ORT_DISABLE_TELEMETRY=1
echo "== ruff"
.venv/bin/ruff check rag tests scripts
echo "== mypy"
.venv/bin/mypy rag
echo "== pytest"
if ! command -v chromium >/dev/null 2>&1 && [ "${RAG_REQUIRE_BROWSER:-}" != "1" ]; then
  echo "note: Chromium not found, the chat page's browser tests will skip (install it: sudo apt-get install -y chromium)"
fi
.venv/bin/python -m pytest "$@"

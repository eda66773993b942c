#!/usr/bin/env bash
# Set up, ingest the sample documents in data/, and ask one question in each language.
# Works offline and with no chat model: answers are then extractive. Set OPENAI_API_KEY / OPENAI_BASE_URL
# (any OpenAI-compatible server) to get generated answers instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export ORT_DISABLE_TELEMETRY=1
export RAG_INDEX_DIR="${RAG_INDEX_DIR:-.rag-demo}"
rag=.venv/bin/rag
echo "== rag ingest data/"
$rag ingest data/
echo
echo "== rag ask \"犹豫期内退保会扣多少钱？\""
$rag ask "犹豫期内退保会扣多少钱？"
echo
echo "== rag ask \"How long is the waiting period for pre-existing conditions?\""
$rag ask "How long is the waiting period for pre-existing conditions?"

"""The token cost of query optimisation (rag/query_llm.py): the rewrite and the rerank request, counted.

    python scripts/query_llm_tokens.py                 # the policies in ../shared/eval (else data/)
    python scripts/query_llm_tokens.py DOCS_DIR ...    # your own documents

Builds a throwaway index of the documents (fake embedder: which passages come back barely matters, since each
is cut to 300 characters), then counts with cl100k_base (rag.tokens) the exact messages the two calls would
send for a compound Chinese and English question, and typical replies: two rewritten queries, and a ranking of
all 20 passages (the longest reply the rerank asks for). No model is called.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag.config import Settings  # noqa: E402
from rag.index import Index  # noqa: E402
from rag.ingest import ingest_paths  # noqa: E402
from rag.prompts import count_message_tokens, question_language  # noqa: E402
from rag.query_llm import LANGUAGE_NAMES, REWRITE_SYSTEM, REWRITE_USER, rerank_messages  # noqa: E402
from rag.tokens import count_tokens  # noqa: E402

EVAL = REPO.parent / "shared" / "eval"
EXAMPLES = {
    "zh": (
        "犹豫期退保能拿回多少钱？等待期内生病赔不赔？",
        ["犹豫期内解除合同退还保险费的约定", "等待期内发生保险事故的保险责任"],
    ),
    "en": (
        "If I pay my premium late am I still covered, and how long before pre-existing illness is covered?",
        ["grace period for premium payment and cover during it", "waiting period for pre-existing diseases"],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--depth", type=int, default=20, help="passages in the rerank request")
    args = parser.parse_args()
    paths = args.paths or [p for p in (EVAL / "policies_zh", EVAL / "policies_en") if p.exists()] or [REPO / "data"]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=Path(tmp) / "index", embedder="fake", _env_file=None)  # type: ignore[call-arg]
        index = Index(settings)
        ingest_paths(paths, index)
        searcher = index.searcher()
        print(f"documents: {', '.join(str(p) for p in paths)}")
        print("| question | rewrite prompt | rewrite reply | rerank prompt (passages) | rerank reply |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for language, (question, queries) in EXAMPLES.items():
            rewrite = [
                {"role": "system", "content": REWRITE_SYSTEM},
                {"role": "user", "content": REWRITE_USER.format(language=LANGUAGE_NAMES[language], question=question)},
            ]
            assert question_language(question) == language
            hits = searcher.search(question, args.depth, "hybrid")
            ranking = json.dumps({"ranking": list(range(len(hits), 0, -1))})
            print(
                f"| {language}: {count_tokens(question)} tokens | {count_message_tokens(rewrite)} "
                f"| {count_tokens(json.dumps({'queries': queries}, ensure_ascii=False))} "
                f"| {count_message_tokens(rerank_messages(question, hits))} ({len(hits)}) "
                f"| {count_tokens(ranking)} |"
            )


if __name__ == "__main__":
    main()

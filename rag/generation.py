"""Answer generation: an OpenAI-compatible chat model, or, with none configured, an extractive answer
(`rag.extractive`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag.errors import ModelError, mask_secret
from rag.extractive import extractive_answer

__all__ = ["Completion", "chat", "extractive_answer", "make_client"]

if TYPE_CHECKING:
    import openai

    from rag.config import Settings


def make_client(settings: Settings, *, embeddings: bool = False) -> openai.OpenAI:
    """The client of the chat model's server, or with `embeddings` of the embedding server (which may be another
    one: Settings.embedding_endpoint)."""
    import openai

    base_url, key = settings.embedding_endpoint() if embeddings else (settings.base_url, settings.api_key)
    api_key = key.get_secret_value() if key else "not-needed"
    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
    )


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None


def chat(client: openai.OpenAI, request: dict[str, Any], base_url: str | None) -> Completion:
    """One chat completion, or a ModelError a user can act on. A server that echoes the API key in its error
    body cannot make it reach the user: the key is masked in every message."""
    try:
        return _chat(client, request, base_url)
    except ModelError as exc:
        masked = mask_secret(str(exc), client.api_key)
        cause = str(exc.__cause__ or "")
        if masked != str(exc) or mask_secret(cause, client.api_key) != cause:  # the upstream error holds the key
            raise ModelError(masked) from None
        raise


def _chat(client: openai.OpenAI, request: dict[str, Any], base_url: str | None) -> Completion:
    import openai

    where = base_url or "the OpenAI API"
    try:
        response = client.chat.completions.create(**request)
    except openai.APITimeoutError as exc:
        raise ModelError(
            f"the chat model at {where} did not answer within the timeout; "
            "raise RAG_REQUEST_TIMEOUT or check the server"
        ) from exc
    except openai.APIConnectionError as exc:
        raise ModelError(
            f"cannot reach the chat model at {where}; check OPENAI_BASE_URL and that the server runs"
        ) from exc
    except openai.AuthenticationError as exc:
        raise ModelError(f"the chat model at {where} refused the API key (401); check OPENAI_API_KEY") from exc
    except openai.RateLimitError as exc:
        raise ModelError(f"the chat model at {where} is rate-limiting (429) after retries; try again later") from exc
    except openai.APIStatusError as exc:
        raise ModelError(f"the chat model at {where} answered HTTP {exc.status_code}: {_short(exc.message)}") from exc
    except openai.APIError as exc:
        raise ModelError(f"the chat model at {where} sent an unusable answer: {_short(str(exc))}") from exc
    except ValueError as exc:  # a body that is not JSON
        raise ModelError(f"the chat model at {where} sent a malformed answer: {_short(str(exc))}") from exc
    if isinstance(response, str):  # the openai client returns the raw text when the body is not JSON
        raise ModelError(
            f"the chat model at {where} sent a non-JSON answer ({_short(response, 80)!r}); "
            "check that OPENAI_BASE_URL points at an OpenAI-compatible /v1 endpoint"
        )
    choices = getattr(response, "choices", None)
    if not choices or choices[0].message is None or not (choices[0].message.content or "").strip():
        raise ModelError(f"the chat model at {where} returned no answer (empty choices); try again or another model")
    usage = getattr(response, "usage", None)
    return Completion(
        text=choices[0].message.content.strip(),
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
    )


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

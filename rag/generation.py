"""Answer generation: an OpenAI-compatible chat model, or, with none configured, an extractive answer
(`rag.extractive`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag.errors import ModelError, mask_secret
from rag.extractive import extractive_answer

__all__ = ["Completion", "chat", "chat_stream", "extractive_answer", "make_client"]

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
    where = base_url or "the OpenAI API"
    with _model_errors(where):
        response = client.chat.completions.create(**request)
    if isinstance(response, str):  # the openai client returns the raw text when the body is not JSON
        raise ModelError(
            f"the chat model at {where} sent a non-JSON answer ({_short(response, 80)!r}); "
            "check that OPENAI_BASE_URL points at an OpenAI-compatible /v1 endpoint"
        )
    choices = getattr(response, "choices", None)
    if not choices or choices[0].message is None or not (choices[0].message.content or "").strip():
        raise _empty(where)
    usage = getattr(response, "usage", None)
    return Completion(
        text=choices[0].message.content.strip(),
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
    )


def chat_stream(client: openai.OpenAI, request: dict[str, Any], base_url: str | None) -> Iterator[str]:
    """One chat completion with `stream: true`: the request is sent (and its HTTP errors raised, as ModelError)
    before this returns; the returned iterator yields the text deltas as they arrive. A failure half-way
    through the stream, or a stream without text, raises ModelError from the iterator."""
    where = base_url or "the OpenAI API"
    with _masked(client):
        with _model_errors(where):
            stream = client.chat.completions.create(**(request | {"stream": True}))
        if isinstance(stream, str):
            raise ModelError(
                f"the chat model at {where} sent a non-streaming answer ({_short(stream, 80)!r}); "
                "check that OPENAI_BASE_URL points at an OpenAI-compatible /v1 endpoint"
            )
    return _deltas(client, stream, where)


def _deltas(client: openai.OpenAI, stream: Any, where: str) -> Iterator[str]:
    sent = False
    with _masked(client), _model_errors(where):
        try:
            for chunk in stream:
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(choice, "delta", None)
                    text = getattr(delta, "content", None) if delta is not None else None
                    if text:
                        sent = sent or bool(text.strip())
                        yield text
        finally:
            stream.close()  # a client that stops reading must not leave the model's connection open
    if not sent:
        raise _empty(where)


def _empty(where: str) -> ModelError:
    return ModelError(f"the chat model at {where} returned no answer (empty choices); try again or another model")


@contextmanager
def _masked(client: openai.OpenAI) -> Iterator[None]:
    try:
        yield
    except ModelError as exc:  # as in `chat`: a key in the message or in the upstream error is never shown
        masked = mask_secret(str(exc), client.api_key)
        cause = str(exc.__cause__ or "")
        if masked != str(exc) or mask_secret(cause, client.api_key) != cause:
            raise ModelError(masked) from None
        raise


@contextmanager
def _model_errors(where: str) -> Iterator[None]:
    """The openai client's exceptions as ModelErrors that say what to check."""
    import openai

    try:
        yield
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


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

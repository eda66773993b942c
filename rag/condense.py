"""Follow-up questions made standalone: "那等待期呢？" after "犹豫期多长？" becomes a question retrieval can
answer on its own. With a chat model configured the model rewrites it (fixed seed, request and hash kept for
the audit); offline, rules carry the subject of the earlier turns into an elliptical follow-up
(`rag.condense_rules`). A question that stands on its own is left as it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rag.condense_rules import condense_by_rules
from rag.records import Message

if TYPE_CHECKING:
    from rag.config import Settings

CondenseMethod = Literal["none", "rules", "llm"]

CONDENSE_PROMPT = (
    "You rewrite a customer's follow-up question so that it can be understood without the conversation. "
    "Replace pronouns and elliptical phrases (it, that, this one, 那……呢, 这个, 它) with what they refer to in the "
    "earlier turns: the product, the clause or the topic. Keep the customer's language (Chinese stays Chinese, "
    "English stays English) and their meaning; do not answer it and do not add facts. "
    "If the question already stands on its own, return it unchanged. Reply with the question only."
)


@dataclass(frozen=True)
class Condensed:
    """The standalone question for one turn and how it was obtained."""

    question: str  # as typed
    standalone: str  # what retrieval and the refusal gate use
    method: CondenseMethod
    history_turns: int = 0  # earlier messages read
    request: dict[str, Any] | None = None  # the condense request sent to the model
    request_sha256: str | None = None

    @property
    def changed(self) -> bool:
        return self.standalone != self.question

    def to_audit(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "method": self.method,
            "history_turns": self.history_turns,
            "condensed_question": self.standalone,
        }
        if self.request is not None:
            record |= {"request": self.request, "request_sha256": self.request_sha256}
        return record


def as_history(history: Sequence[Message | dict[str, Any]] | None) -> tuple[Message, ...]:
    """Earlier turns from Messages or {"role", "content"} dicts (the OpenAI shape); system messages and empty
    turns are left out: the history is what the customer and the assistant said."""
    turns: list[Message] = []
    for item in history or ():
        role, content = (
            (item.role, item.content) if isinstance(item, Message) else (item.get("role"), item.get("content"))
        )
        if role in ("user", "assistant") and isinstance(content, str) and content.strip():
            turns.append(Message(role=role, content=content.strip()))
    return tuple(turns)


def recent_turns(history: Sequence[Message], turns: int) -> tuple[Message, ...]:
    """The messages of the last `turns` exchanges (a user message and the answer after it)."""
    starts = [i for i, message in enumerate(history) if message.role == "user"]
    if len(starts) <= turns:
        return tuple(history)
    return tuple(history[starts[-turns] :])


def condense(
    question: str,
    history: Sequence[Message],
    settings: Settings,
    *,
    model: str | None = None,
    seed: int | None = None,
) -> Condensed:
    """The standalone form of `question` given the earlier turns: by the chat model when one is configured,
    else by the rules. Without history the question is returned unchanged and nothing is called."""
    if not history:
        return Condensed(question, question, "none")
    recent = recent_turns(history, settings.condense_turns)
    if settings.llm_configured():
        return _by_model(question, recent, settings, model, seed)
    return Condensed(question, condense_by_rules(question, recent), "rules", len(recent))


def condense_request(question: str, recent: Sequence[Message], model: str, seed: int) -> dict[str, Any]:
    transcript = "\n".join(f"{'Customer' if m.role == 'user' else 'Assistant'}: {_short(m.content)}" for m in recent)
    user = f"Conversation so far:\n{transcript}\n\nFollow-up question: {question}\n\nStandalone question:"
    return {
        "model": model,
        "messages": [{"role": "system", "content": CONDENSE_PROMPT}, {"role": "user", "content": user}],
        "seed": seed,
        "temperature": 0.0,
        "max_tokens": 200,
    }


def _by_model(
    question: str, recent: Sequence[Message], settings: Settings, model: str | None, seed: int | None
) -> Condensed:
    from rag.generation import chat, make_client
    from rag.qa import request_sha256

    request = condense_request(question, recent, model or settings.chat_model, settings.seed if seed is None else seed)
    completion = chat(make_client(settings), request, settings.base_url)
    standalone = _one_line(completion.text) or question
    return Condensed(question, standalone, "llm", len(recent), request, request_sha256(request))


def _one_line(text: str) -> str:
    """The model's question without quotes or a label it may have added."""
    line = next((part.strip() for part in text.strip().splitlines() if part.strip()), "")
    for label in ("Standalone question:", "独立问题：", "问题："):
        line = line.removeprefix(label).strip()
    return line.strip("\"'“”「」 ")


def _short(text: str, limit: int = 600) -> str:
    """An earlier answer cut for the condense prompt: its subject is in its first sentences."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"

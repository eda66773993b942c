"""The ask pipeline, streamed: the answer's text as it is written, then the checked Answer.

Everything that can fail before the first word (the index, condensing, retrieval, the model refusing the
request) fails when `stream_answer` is called, so a face can still answer with an error status. The model is
called with `stream: true` and its tokens pass through as they arrive; verification needs the whole text, so
it runs at the end and its citations and warnings come with the final Answer. A refusal or an extractive
answer is already whole (and checked): it is handed out in pieces of the same shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rag.citing import checked
from rag.generation import chat_stream, make_client
from rag.qa import extractive, finish, model_request, prepare, refusal
from rag.records import Answer, AnswerMode, Message, RetrievalMode
from rag.verify import guard_stream

if TYPE_CHECKING:
    from datetime import date

    from rag.config import Settings
    from rag.retrieval import Searcher

__all__ = ["PIECE_CHARS", "AnswerStream", "stream_answer"]

PIECE_CHARS = 16  # a finished text (refusal, extractive) is handed out this many characters at a time


class AnswerStream:
    """Iterate for the answer's text as it arrives; once the iteration has ended, `answer` is the checked
    Answer (its text may differ from what streamed: verification removes invalid citation markers)."""

    def __init__(
        self, mode: AnswerMode, condensed_question: str, pieces: Iterator[str], complete: Callable[[str], Answer]
    ) -> None:
        self.mode = mode
        self.condensed_question = condensed_question
        self._pieces = pieces
        self._complete = complete
        self._answer: Answer | None = None
        self._listeners: list[Callable[[Answer], None]] = []

    def on_complete(self, listener: Callable[[Answer], None]) -> None:
        """Call `listener` with the checked Answer once the stream has been read to the end."""
        self._listeners.append(listener)

    def __iter__(self) -> Iterator[str]:
        parts: list[str] = []
        for piece in self._pieces:
            parts.append(piece)
            yield piece
        self._answer = self._complete("".join(parts))
        for listener in self._listeners:
            listener(self._answer)

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            raise RuntimeError("the answer is complete only once its stream has been read to the end")
        return self._answer


def in_pieces(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def stream_answer(
    question: str,
    settings: Settings,
    *,
    history: Sequence[Message | dict[str, Any]] | None = None,
    searcher: Searcher | None = None,
    top_k: int | None = None,
    mode: RetrievalMode | None = None,
    source: str | None = None,
    model: str | None = None,
    seed: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    as_of: str | date | None = None,
    product: str | None = None,
) -> AnswerStream:
    """`rag.qa.answer_question`, streamed (same arguments, same Answer at the end)."""
    prepared = prepare(
        question,
        settings,
        history=history,
        searcher=searcher,
        top_k=top_k,
        mode=mode,
        source=source,
        model=model,
        seed=seed,
        as_of=as_of,
        product=product,
    )
    standalone = prepared.condensed.standalone
    if prepared.decision.refuse or not settings.llm_configured():
        draft = refusal(prepared) if prepared.decision.refuse else extractive(prepared)
        final = finish(prepared, settings, draft if draft.mode == "refused" else checked(draft))
        # already whole and checked: the final text is what streams, so the page's re-render changes nothing
        return AnswerStream(final.mode, standalone, in_pieces(final.answer), lambda _text: final)
    request = model_request(prepared, settings, model, seed, temperature, max_tokens)
    started = time.perf_counter()
    deltas = chat_stream(make_client(settings), request.body | {"stream": True}, settings.base_url)
    first: list[float] = []
    raw: list[str] = []  # what the model wrote: verified whole at the end, so removed links are reported

    def timed() -> Iterator[str]:
        for delta in deltas:
            if not first:
                first.append(time.perf_counter())
                prepared.timings["first_token_s"] = round(first[0] - prepared.started, 6)
            raw.append(delta)
            yield delta

    def complete(_streamed: str) -> Answer:
        prepared.timings["generate_s"] = round(time.perf_counter() - started, 6)
        call = request.call("".join(raw))
        return finish(prepared, settings, checked(call.answer), call)

    sent = [passage.text for passage in request.packed.passages]
    pieces = (piece for piece in guard_stream(timed(), sent) if piece)
    return AnswerStream("llm", standalone, pieces, complete)

"""A conversation with the knowledge base: each question is read with the turns before it.

`Conversation` keeps the turns (typed, frozen) and nothing else: the history it sends with each question is
exactly what was asked and answered, so a follow-up ("那等待期呢？", "and for the family plan?") is condensed
into a standalone question before retrieval (`rag.condense`). The HTTP server keeps no such object: its
clients send the history with each request, as with the OpenAI API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.records import Answer, Message

if TYPE_CHECKING:
    from rag.qa_stream import AnswerStream
    from rag.retrieval import Searcher

__all__ = ["Conversation", "Turn"]


@dataclass(frozen=True)
class Turn:
    """One question as typed and the answer it got (with the standalone question it was condensed into)."""

    question: str
    answer: Answer

    @property
    def condensed_question(self) -> str:
        return self.answer.condensed_question or self.question


class Conversation:
    """Ask questions one after another; each is answered with the earlier turns as its history.

    `options` (top_k, mode, source, model, seed, temperature, max_tokens) apply to every turn; `ask` and
    `stream` take the same options for one turn. The index is opened on the first question and reused.
    """

    def __init__(self, settings: Settings | None = None, *, searcher: Searcher | None = None, **options: Any) -> None:
        self.settings = settings or Settings()
        self._searcher = searcher
        self._options = options
        self._turns: list[Turn] = []

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(self._turns)

    @property
    def last(self) -> Turn | None:
        return self._turns[-1] if self._turns else None

    def history(self) -> list[Message]:
        """The earlier turns as messages, oldest first."""
        messages: list[Message] = []
        for turn in self._turns:
            messages += [Message("user", turn.question), Message("assistant", turn.answer.answer)]
        return messages

    def ask(self, question: str, **options: Any) -> Answer:
        """The answer to `question` read with the turns so far; the turn is kept."""
        from rag.qa import answer_question

        answer = answer_question(
            question, self.settings, history=self.history(), searcher=self._open(), **(self._options | options)
        )
        self._turns.append(Turn(question, answer))
        return answer

    def stream(self, question: str, **options: Any) -> AnswerStream:
        """`ask`, streamed: iterate for the text as it is written; the turn is kept once the stream has ended
        (a stream abandoned half-way leaves no turn)."""
        from rag.qa_stream import stream_answer

        stream = stream_answer(
            question, self.settings, history=self.history(), searcher=self._open(), **(self._options | options)
        )
        stream.on_complete(lambda answer: self._turns.append(Turn(question, answer)))
        return stream

    def reset(self) -> None:
        """Forget the turns: the next question starts a new conversation."""
        self._turns.clear()

    def _open(self) -> Searcher:
        if self._searcher is None:
            from rag.index import Index

            self._searcher = Index(self.settings).searcher()
        return self._searcher

"""`rag chat`: a conversation in the terminal, or one JSON object per question read from stdin (`--json`).

A thin face over `rag.Conversation`: it reads a line, streams the answer as it is written (with a chat model
the tokens arrive one by one; offline the extractive answer comes whole), then prints the citations and, when
the follow-up was rewritten, the standalone question that was searched for. Errors are one line and the
conversation goes on; Ctrl-C stops the answer being written (or clears the line), Ctrl-D leaves.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import IO, TYPE_CHECKING, Any

from rag.errors import RagError
from rag.text import terminal_safe

if TYPE_CHECKING:
    from rag.conversation import Conversation
    from rag.records import Answer

PROMPT = "you> "
HELP = "/sources shows the passages of the last answer, /reset starts over, /quit leaves (or Ctrl-D)."
SNIPPET_CHARS = 100


def run_json(conversation: Conversation, lines: IO[str], out: IO[str], debug: bool = False) -> int:
    """One question a line (`/reset` starts over); one JSON object a line: the answer with its turn number,
    or {"error": {...}}. Returns the exit code: 1 when any question failed."""
    failed = False
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line == "/reset":
            conversation.reset()
            continue
        try:
            answer = conversation.ask(line)
        except RagError as exc:
            if debug:
                raise
            failed = True
            record: dict[str, Any] = {"error": {"message": str(exc), "type": type(exc).__name__}}
        else:
            record = {"turn": len(conversation.turns), **answer.to_dict()}
        line_out = json.dumps(record, ensure_ascii=False, default=str)
        # as `rag ask --json`: DEL and the C1 controls (U+009B is a CSI to some terminals) escaped too
        out.write(re.sub("[\x7f-\x9f]", lambda m: f"\\u{ord(m[0]):04x}", line_out) + "\n")
        out.flush()
    return 1 if failed else 0


def run_interactive(conversation: Conversation, out: IO[str] = sys.stdout, debug: bool = False) -> int:
    """The read-answer loop. Returns the exit code (0: the user left)."""
    _enable_line_editing()
    mode = "a chat model" if conversation.settings.llm_configured() else "extractive answers (no chat model)"
    out.write(f"rag chat: {mode}. {HELP}\n")
    out.flush()
    while True:
        try:
            line = input(PROMPT).strip()
        except EOFError:  # Ctrl-D
            out.write("\n")
            return 0
        except KeyboardInterrupt:  # Ctrl-C on the prompt clears the line
            out.write("\n")
            continue
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            return 0
        if line == "/reset":
            conversation.reset()
            out.write("(new conversation)\n")
        elif line == "/sources":
            _sources(conversation, out)
        elif line in ("/help", "/?"):
            out.write(HELP + "\n")
        elif line.startswith("/"):
            out.write(f"unknown command {line.split()[0]}. {HELP}\n")
        else:
            _turn(conversation, line, out, debug)
        out.flush()


def _turn(conversation: Conversation, question: str, out: IO[str], debug: bool) -> None:
    try:
        stream = conversation.stream(question)
        if stream.condensed_question != question:
            out.write(f"(searching for: {terminal_safe(stream.condensed_question)})\n")
        written = []
        for piece in stream:
            written.append(piece)
            out.write(terminal_safe(piece, one_line=False))  # a document's escape sequences never reach it raw
            out.flush()
        out.write("\n")
        if "".join(written).strip() != stream.answer.answer.strip():  # verification removed a marker or link
            out.write(f"checked answer: {terminal_safe(stream.answer.answer, one_line=False)}\n")
        _footer(stream.answer, out)
    except KeyboardInterrupt:  # the answer stops; the turn is not kept
        out.write("\n(interrupted)\n")
    except RagError as exc:
        if debug:
            raise
        out.write(f"\nerror: {terminal_safe(str(exc))}\n")


def _footer(answer: Answer, out: IO[str]) -> None:
    """Warnings, the verified answer when verification changed it, and the citations."""
    for warning in answer.warnings:
        out.write(f"warning: {terminal_safe(warning)}\n")
    if answer.citations:
        out.write("Sources:\n")
        for citation in answer.citations:
            clause = f", {citation.clause}" if citation.clause else ""
            out.write(terminal_safe(f"  [{citation.n}] {citation.source}, page {citation.page}{clause}") + "\n")


def _sources(conversation: Conversation, out: IO[str]) -> None:
    last = conversation.last
    if last is None:
        out.write("(no answer yet)\n")
        return
    out.write(f"passages for: {terminal_safe(last.condensed_question)}\n")
    for passage in last.answer.passages:
        clause = f", {passage.clause}" if passage.clause else ""
        snippet = " ".join(passage.text.split())
        snippet = snippet if len(snippet) <= SNIPPET_CHARS else snippet[: SNIPPET_CHARS - 1] + "…"
        where = f"  [{passage.n}] {passage.source}, page {passage.page}{clause} (score {passage.score:.3f})"
        out.write(f"{terminal_safe(where)}\n      {terminal_safe(snippet)}\n")


def _enable_line_editing() -> None:
    """Arrow keys, editing and the session's history for input(), where the platform has readline."""
    with contextlib.suppress(ImportError):  # Windows without pyreadline: plain input still works
        import readline  # noqa: F401 - importing it is what turns line editing on for input()

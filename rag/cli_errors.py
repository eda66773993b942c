"""The command line's errors: one line on stderr (or a JSON object) and an exit code, secrets masked, and
everything printed made safe for a terminal."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from rag.config import Settings
from rag.errors import RagError, mask_secret

_resolved_index: list[Path] = []  # the index folder of this command, for explaining a full or read-only disk


def remember_index(root: Path) -> None:
    """The index folder the command works on (set when its settings are resolved)."""
    _resolved_index[:] = [root]


@contextmanager
def errors(as_json: bool, debug: bool) -> Iterator[None]:
    """Domain errors become one line on stderr (or a JSON object) and a non-zero exit code; --debug adds the
    traceback first. Every secret is masked in both (a model server may echo the API key in its error body)."""
    import click

    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except RagError as exc:
        if debug:
            _print_traceback(exc)
        fail(mask_secret(str(exc), _known_secrets()), type(exc).__name__, exc.exit_code, as_json)
    except KeyboardInterrupt:
        fail("interrupted", "Interrupted", 130, as_json)
    except Exception as exc:
        from rag.storage import storage_problem

        problem = storage_problem(exc, _resolved_index[0]) if _resolved_index else None
        if problem is not None:  # a full disk or a read-only index: one line, the traceback only with --debug
            if debug:
                _print_traceback(exc)
            fail(str(problem), type(problem).__name__, problem.exit_code, as_json)
        _print_traceback(exc)  # a bug: never swallowed, shown with its traceback, secrets masked
        message = f"unexpected {type(exc).__name__}: {mask_secret(str(exc), _known_secrets())}"
        fail(message, "InternalError", 1, as_json)


def _known_secrets() -> list[str | None]:
    """The secrets to mask: those of the settings, and the environment's (when a bad setting stops Settings)."""
    names = ("RAG_API_KEY", "OPENAI_API_KEY", "RAG_CHROMA_TOKEN", "RAG_SERVER_API_KEY")
    found = [os.environ.get(name) for name in names]
    try:
        return [*found, *Settings().secrets()]
    except Exception:  # the error being reported may be that very setting
        return found


def _print_traceback(exc: BaseException) -> None:
    import traceback

    text = "".join(traceback.format_exception(exc))
    say(mask_secret(text, _known_secrets()).rstrip("\n"), err=True)


def fail(message: str, kind: str, code: int, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"error": {"message": message, "type": kind}}, ensure_ascii=False))
    else:
        say(f"error: {message}", err=True)
    raise typer.Exit(code)


def say(text: str, err: bool = False) -> None:
    """Print for a terminal: a document's escape sequences are shown, never obeyed (rag.text.terminal_safe)."""
    from rag.text import terminal_safe

    typer.echo(terminal_safe(text, one_line=False), err=err)

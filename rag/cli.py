"""The command line: parse, call the library, render. Heavy libraries load inside the commands."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from rag.config import Settings
from rag.errors import RagError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Grounded, cited answers from your own documents (Chinese and English).",
)

IndexOption = Annotated[Path | None, typer.Option("--index", help="Index folder (default: RAG_INDEX_DIR or ./.rag).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.", envvar="RAG_DEBUG")]


def _settings(index: Path | None, **overrides: Any) -> Settings:
    settings = Settings()
    updates = {key: value for key, value in overrides.items() if value is not None}
    if index is not None:
        updates["index_dir"] = index
    return settings.model_copy(update=updates) if updates else settings


@contextmanager
def _errors(as_json: bool, debug: bool) -> Iterator[None]:
    """Domain errors become one line on stderr (or a JSON object) and a non-zero exit code."""
    try:
        yield
    except RagError as exc:
        if debug:
            raise
        _fail(str(exc), type(exc).__name__, exc.exit_code, as_json)
    except KeyboardInterrupt:
        _fail("interrupted", "Interrupted", 130, as_json)


def _fail(message: str, kind: str, code: int, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"error": {"message": message, "type": kind}}, ensure_ascii=False))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of PDF, TXT and Markdown.")],
    index: IndexOption = None,
    prune: Annotated[bool, typer.Option("--prune", help="Remove the chunks of files that no longer exist.")] = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Read, split, embed and store documents. Unchanged files are skipped."""
    from rag.ingest import ingest_paths

    with _errors(as_json, debug):
        settings = _settings(index)
        with _progress(enabled=not as_json) as progress:
            report = ingest_paths(paths, settings, prune=prune, progress=progress)
    if as_json:
        _print_json(report.to_dict())
    else:
        for failure in report.failed:
            typer.echo(f"failed: {failure.error}", err=True)
        typer.echo(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"removed {report.removed}, failed {len(report.failed)}; "
            f"{report.chunks} chunks in {settings.index_dir} ({report.seconds:.1f} s)"
        )
    if report.failed:
        raise typer.Exit(1)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, str, int, int], None] | None]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(event: str, source: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=Path(source).name if source else "")

        yield update


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in Chinese or English.")],
    index: IndexOption = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Passages to retrieve (default 5).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only search this file (as stored).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Chat model (default RAG_CHAT_MODEL).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed (default 42).")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", min=0.0, max=2.0)] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1)] = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Answer a question from the indexed documents, with citations."""
    from rag.qa import answer_question

    with _errors(as_json, debug):
        settings = _settings(index)
        answer = answer_question(
            question,
            settings,
            top_k=top_k,
            source=source,
            model=model,
            seed=seed,
            temperature=temperature,
            max_tokens=max_tokens,
        )
    if as_json:
        _print_json(answer.to_dict())
        return
    if answer.mode == "extractive":
        typer.echo("Extractive answer (no chat model configured; set OPENAI_API_KEY or OPENAI_BASE_URL):")
    typer.echo(answer.answer)
    for warning in answer.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if answer.citations:
        typer.echo("\nSources:")
        for citation in answer.citations:
            clause = f", {citation.clause}" if citation.clause else ""
            typer.echo(f"  [{citation.n}] {citation.source}, page {citation.page}{clause}")


@app.command()
def status(index: IndexOption = None, as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """What the index holds and how it was built."""
    from rag.store import Manifest

    with _errors(as_json, debug):
        settings = _settings(index)
        manifest = Manifest.load(Path(settings.index_dir))
        data = {
            "index": str(settings.index_dir),
            "documents": manifest.documents() if manifest else 0,
            "files": len(manifest.files) if manifest else 0,
            "chunks": len(manifest.chunk_ids()) if manifest else 0,
            "embedder": (manifest.fingerprint.get("embedder") if manifest else None) or settings.embedder,
            "settings": manifest.fingerprint if manifest else {},
        }
    if as_json:
        _print_json(data)
        return
    typer.echo(
        f"index {data['index']}: {data['documents']} documents ({data['files']} files), {data['chunks']} chunks; "
        f"embedder {data['embedder']}; settings {json.dumps(data['settings'], ensure_ascii=False)}"
    )


def main() -> None:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    app()


if __name__ == "__main__":
    main()

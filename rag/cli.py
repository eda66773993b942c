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


def _version(value: bool) -> None:
    if value:
        from rag import __version__

        typer.echo(f"rag {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Grounded, cited answers from your own documents (Chinese and English)."""


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
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Set Chroma's files aside and store every indexed file again (vectors come from the cache).",
        ),
    ] = False,
    follow_symlinks: Annotated[
        bool | None,
        typer.Option(
            "--follow-symlinks",
            help="Follow links inside the folders given even when they lead out of them (default: report them).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Read, split, embed and store documents. Unchanged files are skipped."""
    from rag.index import Index
    from rag.ingest import ingest_paths
    from rag.text import terminal_safe

    with _errors(as_json, debug):
        opened = Index(_settings(index, follow_symlinks=follow_symlinks))
        with _progress(enabled=not as_json) as progress, opened:
            report = ingest_paths(paths, opened, prune=prune, progress=progress, rebuild=rebuild)
    if as_json:
        _print_json(report.to_dict())
    else:
        if report.rebuilt:
            why = "as asked" if rebuild else "they could not be read after a killed run"
            typer.echo(
                f"rebuilt the vector index ({why}): the old Chroma files are in "
                f"{opened.layout.chroma_set_aside}; {report.embedded} chunks were embedded again, "
                "the rest came from the embedding cache",
                err=True,
            )
        for failure in report.failed:  # a newline in a file name must not forge a line of its own
            typer.echo(f"failed: {terminal_safe(failure.error)}", err=True)
        typer.echo(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"removed {report.removed}, failed {len(report.failed)}; "
            f"{report.chunks} chunks in {terminal_safe(str(opened.root))} ({report.seconds:.1f} s)"
        )
    if report.failed:
        raise typer.Exit(1)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, str, int, int], None] | None]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from rag.text import terminal_safe

    with Progress(
        TextColumn("[bold]{task.fields[stage]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        transient=True,
    ) as bar:
        # files read and stored, and chunks embedded out of the chunks found so far (the ETA follows the chunks)
        files = bar.add_task("", total=None, stage="read ", unit="files")
        chunks = bar.add_task("", total=None, stage="embed", unit="chunks")

        def update(event: str, source: str, done: int, total: int) -> None:
            name = escape(terminal_safe(Path(source).name)) if source else ""
            if event == "embedding":
                bar.update(chunks, completed=done, total=total, description=name)
            elif event == "file":
                bar.update(files, completed=done, total=total, description=name)
            else:
                bar.update(files, completed=done, total=total)

        yield update


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in Chinese or English.")],
    index: IndexOption = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Passages to retrieve (default 5).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only search this file (as stored).")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Retrieval: dense, lexical or hybrid (default RAG_RETRIEVAL_MODE).")
    ] = None,
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
            mode=mode,  # type: ignore[arg-type]  # checked by the Searcher, with a message
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
            also = [other for other in citation.sources if other != citation.source]
            copies = f" (same content: {', '.join(also)})" if also else ""
            typer.echo(f"  [{citation.n}] {citation.source}, page {citation.page}{clause}{copies}")
    if answer.mode == "refused" and answer.passages:
        typer.echo("\nNearest passages:")
        for passage in answer.passages:
            snippet = " ".join(passage.text.split())
            snippet = snippet if len(snippet) <= 80 else snippet[:79] + "…"
            typer.echo(f"  [{passage.n}] {passage.source}, page {passage.page} (score {passage.score:.3f}): {snippet}")


@app.command()
def status(index: IndexOption = None, as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """What the index holds and how it was built."""
    from rag.index import Index

    with _errors(as_json, debug):
        data = Index(_settings(index)).status()
    if as_json:
        _print_json(data)
        return
    typer.echo(
        f"index {data['index']}: {data['documents']} documents ({data['files']} files), {data['chunks']} chunks; "
        f"embedder {data['embedder']}; settings {json.dumps(data['settings'], ensure_ascii=False)}"
    )


eval_app = typer.Typer(help="Measure retrieval on an evaluation set.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: Annotated[Path, typer.Argument(help="An InsQABench or FinanceBench folder (recognised by its files).")],
    mode: Annotated[list[str] | None, typer.Option("--mode", help="dense, lexical or hybrid (repeatable).")] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "1,5,10",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N questions.")] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where evaluation indexes live.")] = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Recall@k / MRR (InsQABench) or page hit@k (FinanceBench) for dense, lexical and hybrid retrieval."""
    from rag.eval_runner import MODES, run_retrieval_eval
    from rag.eval_runner import as_json as report_json
    from rag.evaluation import format_table, parse_ks

    with _errors(as_json, debug):
        modes = mode or list(MODES)
        unknown = [name for name in modes if name not in MODES]
        if unknown:
            raise typer.BadParameter(f"unknown mode(s) {unknown}: use dense, lexical or hybrid")
        report = run_retrieval_eval(
            dataset,
            _settings(None),
            modes=modes,  # type: ignore[arg-type]
            ks=parse_ks(k),
            limit=limit,
            work_dir=work_dir,
            log=lambda message: typer.echo(message, err=True),
        )
    if as_json:
        _print_json(report_json(report))
        return
    for variant, runs in report.runs.items():
        title = report.dataset if variant == "all" else f"{report.dataset} ({variant})"
        typer.echo(format_table(runs, title))
        typer.echo("")


@eval_app.command("answers")
def eval_answers(
    questions: Annotated[Path, typer.Argument(help="A JSONL set: {id, lang, question, answerable, file, pages, ...}.")],
    index: IndexOption = None,
    docs: Annotated[
        list[Path] | None, typer.Option("--docs", help="Ingest these files or folders first (repeatable).")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="dense, lexical or hybrid (RAG_RETRIEVAL_MODE).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N questions.")] = None,
    failures: Annotated[bool, typer.Option("--failures/--no-failures", help="List the failed checks.")] = True,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Ask every question as `rag ask` does: refusals, page hit@1/@5, cited clauses, facts, seconds."""
    from rag.answer_eval import answer_report_json, evaluate_answers, format_answer_table, format_failures

    with _errors(as_json, debug):
        report = evaluate_answers(
            questions,
            _settings(index),
            docs=docs or [],
            mode=mode,  # type: ignore[arg-type]  # checked by evaluate_answers, with a message
            limit=limit,
            log=lambda message: typer.echo(message, err=True),
        )
    if as_json:
        _print_json(answer_report_json(report))
        return
    typer.echo(format_answer_table(report, title=f"answer quality: {questions.name}"))
    if failures:
        typer.echo("\n" + format_failures(report))


cache_app = typer.Typer(help="The embedding cache (vectors keyed by embedder and text hash).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def cache_clear(index: IndexOption = None, as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """Delete every cached vector. The index itself is untouched."""
    from rag.index import Index

    with _errors(as_json, debug):
        opened = Index(_settings(index))
        path = opened.layout.embed_cache
        removed = 0
        cache = opened.open_cache()
        if cache is not None:
            with cache:
                removed = cache.clear()
    if as_json:
        _print_json({"removed": removed, "path": str(path)})
    else:
        typer.echo(f"removed {removed} cached vectors from {path}")


@cache_app.command("stats")
def cache_stats(index: IndexOption = None, as_json: JsonOption = False, debug: DebugOption = False) -> None:
    """How many vectors are cached, for which embedders, and the file's size."""
    from rag.index import Index

    with _errors(as_json, debug):
        opened = Index(_settings(index))
        stats: dict[str, Any] = {"path": str(opened.layout.embed_cache), "entries": 0}
        cache = opened.open_cache()
        if cache is not None:
            with cache:
                stats = cache.stats()
    if as_json:
        _print_json(stats)
    else:
        typer.echo(json.dumps(stats, ensure_ascii=False, default=str))


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind (default: loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    index: IndexOption = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    debug: DebugOption = False,
) -> None:
    """Serve the HTTP API (/v1/ask, /v1/ingest, OpenAI-compatible /v1/chat/completions) under uvicorn."""
    with _errors(False, debug):
        settings = _settings(index)
        import uvicorn

        from rag.server import create_app

        if host not in ("127.0.0.1", "localhost", "::1") and settings.server_api_key is None:
            typer.echo(
                f"warning: serving on {host} without RAG_SERVER_API_KEY: anyone who can reach it can use it", err=True
            )
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, server_header=False)


def main() -> None:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    app()


if __name__ == "__main__":
    main()

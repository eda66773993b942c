"""The chat page in a real browser: headless Chromium (the system's package, never one downloaded at run time)
driven by Playwright, against a real `rag serve` subprocess over a small index (fake embedder), with the chat
model played by tests/openai_stub.py over real HTTP.

Without Chromium these tests skip with a one-line notice saying how to install it; with RAG_REQUIRE_BROWSER=1
(set by .ci/run) they fail instead. Every test checks that the page asked nothing of any other host (no CDN,
works offline) and broke no Content-Security-Policy rule, and saves a screenshot into its tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, free_port, stop_process, wait_for_http
from openai_stub import OpenAIStub
from pdfgen import write_pdf

from rag.config import Settings
from rag.index import Index
from rag.ingest import ingest_paths

pytestmark = [pytest.mark.slow, pytest.mark.browser]

KEY = "sk-web-test-key"
EVIL_HOST = "evil.example"
# rag.prompts: each source in a <source-TAG id="n" from="..."> block (TAG fences it per request), then "Question [TAG]:"
SOURCE_BLOCK = re.compile(r'<source(?:-\w+)? id="(\d+)" from="[^"]*">\n(.*?)\n</source(?:-\w+)?>', re.S)
SENTENCE = re.compile(r"[^。！？；.!?;\n]+[。！？；.!?;]?")
WORDS = re.compile(r"[A-Za-z0-9]+|[\u4e00-\u9fff]")


def chromium_path() -> str:
    """The system's Chromium, or a skip (a failure under RAG_REQUIRE_BROWSER=1) saying how to install it."""
    found = os.environ.get("RAG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    problem = None
    if not found:
        problem = "Chromium not found (install it: sudo apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright not installed (pip install -e '.[dev]')"
    if problem:
        if os.environ.get("RAG_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{problem}: RAG_REQUIRE_BROWSER=1 requires the browser tests to run")
        pytest.skip(f"browser tests skipped: {problem}", allow_module_level=True)
    assert found is not None
    return found


CHROMIUM = chromium_path()  # at collection: one skip line for the module, not one per test


# ----- the chat model: answers from the sources it is sent -----------------------------------------------


def _question_of(prompt: str) -> str:
    match = re.search(r"^Question(?: \[\w+\])?: (.*)$", prompt, re.M)
    return match.group(1).strip() if match else prompt.strip().splitlines()[-1]


def respond(body: dict[str, Any]) -> str:
    """Reply like a grounded model: the sentence of source [1] sharing most words with the question, cited.
    A follow-up to be made standalone (rag.condense's request) gets its standalone reading."""
    prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    sources = SOURCE_BLOCK.findall(prompt)
    follow_up = re.search(r"^Follow-up question: (.*)$", prompt, re.M)
    if not sources and follow_up:  # made standalone: "那等待期呢？" -> "等待期有多长？"
        elliptical = re.fullmatch(r"那?(.+?)呢[？?]", follow_up.group(1).strip())
        return f"{elliptical.group(1)}有多长？" if elliptical else follow_up.group(1)
    question = _question_of(prompt)
    if not sources:
        return question
    n, text = sources[0]
    wanted = set(WORDS.findall(question.lower()))
    sentences = [s.strip() for s in SENTENCE.findall(text) if not s.strip().startswith("#")]
    best = max(sentences, key=lambda s: (len(wanted & set(WORDS.findall(s.lower()))), len(s)))
    reply = f"{best} [{n}]"
    if "回执" in question:  # a model that followed the planted Markdown
        reply += f" ![回执](http://{EVIL_HOST}/answer.png) [详情](http://{EVIL_HOST}/phish)"
    if "体检" in question:  # a figure the sources do not hold: verification must flag it
        reply += f" 每年另赠价值8888元的体检。[{n}]"
    return reply


# ----- the served index ---------------------------------------------------------------------------------


@dataclass
class Site:
    url: str
    index: Path
    stub: OpenAIStub
    shots: list[Path] = field(default_factory=list)


def _documents(folder: Path) -> Path:
    folder.mkdir()
    for path in DATA.iterdir():
        shutil.copy(path, folder / path.name)
    write_pdf(
        folder / "harbour_dental_rider.pdf",
        [
            [
                "HARBOUR MUTUAL DENTAL RIDER",
                "",
                "1. Definitions",
                "Dental accident means damage to sound natural teeth caused by an external blow.",
            ],
            [
                "2. Dental Accident Benefit",
                "We pay up to 2,000 dollars a year for treatment of a dental accident.",
                "Treatment must start within 30 days of the accident.",
                "",
                "3. Exclusions",
                "Cosmetic dentistry and teeth whitening are not covered.",
            ],
        ],
    )
    (folder / "理赔回执说明.md").write_text(
        "# 理赔回执说明\n\n## 回执寄送\n\n"
        f"理赔回执将在结案后3个工作日内寄送至投保人地址。![回执样张](http://{EVIL_HOST}/pixel.png)"
        f"如需电子回执，请访问[服务中心](http://{EVIL_HOST}/login)申请。\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    index = root / "index"
    docs = _documents(root / "docs")
    settings = Settings(index_dir=index, embedder="fake", _env_file=None)  # type: ignore[call-arg]
    assert not ingest_paths([docs], Index(settings)).failed
    with OpenAIStub(default_content=respond) as stub:  # type: ignore[arg-type]
        port = free_port()
        env = {
            **os.environ,
            "RAG_EMBEDDER": "fake",
            "RAG_SERVER_API_KEY": KEY,
            "OPENAI_BASE_URL": stub.base_url,
            "OPENAI_API_KEY": "sk-stub",
            "RAG_CHAT_MODEL": "stub-chat",
            "RAG_MAX_RETRIES": "0",  # a scripted model failure is one request
            # the fake embedder's gate scores: answerable questions here 0.01-1.0, the unanswerable one 2e-10
            "RAG_REFUSAL_MIN_SCORE": "0.001",
        }
        log = open(root / "serve.log", "wb")  # noqa: SIM115 - closed after the process stops
        process = subprocess.Popen(
            [sys.executable, "-m", "rag", "serve", "--port", str(port), "--index", str(index), "--log-level", "error"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
            yield Site(url=f"http://127.0.0.1:{port}/", index=index, stub=stub)
        finally:
            stop_process(process)
            log.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def wait_until(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Poll a JavaScript expression from outside the page (Playwright's wait_for_function evaluates strings
    inside it, which the page's CSP rightly forbids)."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        page.wait_for_timeout(100)


class Tab:
    """One browser page on the site, recording every request it makes and every console error."""

    def __init__(self, browser: Any, site: Site, locale: str, key: str | None, viewport: dict[str, int]) -> None:
        self.site = site
        self.context = browser.new_context(locale=locale, viewport=viewport)
        if key is not None:
            self.context.add_init_script(f"sessionStorage.setItem('rag.apiKey', {json.dumps(key)})")
        self.requests: list[Any] = []
        self.errors: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request))
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.set_default_timeout(20_000)
        self.page.goto(site.url)

    def ask(self, question: str) -> Any:
        """Ask, wait for the answer to finish, and return the last turn."""
        turns = self.page.locator("#log > li")
        before = turns.count()
        self.page.fill("#question", question)
        self.page.click("#ask-button")
        turn = turns.nth(before)
        turn.locator(".answer[data-state=done], .error").first.wait_for()
        return turn

    def chat_requests(self) -> list[dict[str, Any]]:
        return [
            json.loads(request.post_data)
            for request in self.requests
            if request.url.endswith("/v1/chat/completions") and request.method == "POST"
        ]

    def close(self, shot: Path) -> None:
        self.page.screenshot(path=str(shot), full_page=True)
        self.context.close()
        strangers = [r.url for r in self.requests if not r.url.startswith((self.site.url, "blob:", "data:"))]
        assert not strangers, f"the page asked other hosts: {strangers}"
        assert not [e for e in self.errors if "Content Security Policy" in e], self.errors


@pytest.fixture
def tab(browser: Any, site: Site, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Open the page; the test calls the result with (locale, key, viewport)."""
    opened: list[Tab] = []

    def open_tab(locale: str = "en-US", key: str | None = KEY, viewport: dict[str, int] | None = None) -> Tab:
        opened.append(Tab(browser, site, locale, key, viewport or {"width": 1200, "height": 860}))
        return opened[-1]

    yield open_tab
    for number, each in enumerate(opened):
        each.close(tmp_path / f"{request.node.name}-{number}.png")


# ----- the scenarios ------------------------------------------------------------------------------------


def test_chinese_question_streams_an_answer_with_chips(tab: Any, site: Site) -> None:
    page_tab = tab(locale="zh-CN")
    page = page_tab.page
    assert page.inner_text("#ask-button") == "提问"  # the interface follows the browser's language
    page.locator("#status dd[data-field=documents]").wait_for()
    turn = page_tab.ask("犹豫期有多长？")
    answer = turn.locator(".answer")
    assert "犹豫期" in answer.inner_text()
    assert int(answer.get_attribute("data-deltas") or 0) > 1  # it arrived in pieces, parsed as they came
    chips = turn.locator(".chips .chip")
    assert chips.count() >= 1
    assert re.fullmatch(r"\[1\] .+ · 第\d+页( · .+)?", chips.first.inner_text())
    assert turn.locator(".answer .chip.inline").count() >= 1
    meta = turn.locator(".meta").inner_text()
    assert "大模型" in meta and "stub-chat" in meta and "种子: 42" in meta
    (sent,) = page_tab.chat_requests()
    assert sent["stream"] is True and sent["messages"] == [{"role": "user", "content": "犹豫期有多长？"}]
    page.click("#lang-switch")  # the switch re-labels the page and the answers already shown
    assert page.inner_text("#ask-button") == "Ask"
    assert re.fullmatch(r"\[1\] .+ · p\. \d+( · .+)?", chips.first.inner_text())
    assert page.evaluate("localStorage.getItem('rag.lang')") == "en"


def test_chip_opens_the_passage_and_the_pdf_page(tab: Any, site: Site) -> None:
    page = (page_tab := tab()).page
    turn = page_tab.ask("dental accident benefit treatment")
    chip = turn.locator(".chips .chip").first
    assert "harbour_dental_rider.pdf" in chip.inner_text()
    chip.click()
    viewer = page.locator("#viewer")
    viewer.wait_for()
    marked = viewer.locator("mark").inner_text()  # the cited sentence, not the whole passage
    assert marked.endswith("We pay up to 2,000 dollars a year for treatment of a dental accident")
    assert "Definitions" not in marked
    image = page.locator("#viewer-image")
    wait_until(page, "document.getElementById('viewer-image').naturalWidth > 500")
    assert (image.get_attribute("src") or "").startswith("blob:")
    assert "Page 2" in page.inner_text("#viewer-caption")  # the page holding the cited sentence, not the first
    page.click("#viewer-pages button >> nth=0")
    page.locator("#viewer-caption", has_text="Page 1").wait_for()
    page.click("#viewer-pages button >> nth=1")
    page.locator("#viewer-caption", has_text="Page 2").wait_for()
    assert list((site.index / "page_images").glob("*.png"))  # rendered once, cached in the index folder


def test_follow_up_keeps_the_conversation_on_a_phone(tab: Any, site: Site) -> None:
    page_tab = tab(locale="zh-CN", viewport={"width": 390, "height": 844})
    page = page_tab.page
    first = page_tab.ask("犹豫期有多长？")
    first_answer = first.locator(".answer").inner_text()
    second = page_tab.ask("那等待期呢？")
    assert "等待期" in second.locator(".answer").inner_text()
    assert "等待期有多长？" in second.locator(".condensed").inner_text()  # what was searched for is shown
    assert page.locator("#log > li").count() == 2
    history = page_tab.chat_requests()[1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[0]["content"] == "犹豫期有多长？" and history[2]["content"] == "那等待期呢？"
    assert history[1]["content"].replace(" ", "") == first_answer.replace(" ", "")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    page.click("#new-conversation")
    assert page.locator("#log > li").count() == 0
    page_tab.ask("等待期多长？")
    assert len(page_tab.chat_requests()[2]["messages"]) == 1


def test_unanswerable_question_is_refused_with_the_nearest_passages(tab: Any, site: Site) -> None:
    page_tab = tab()
    answering = len(site.stub.chat_requests)
    turn = page_tab.ask("How do I train a parrot to sing opera?")
    box = turn.locator(".answer-box")
    assert "refused" in (box.get_attribute("class") or "")
    assert turn.locator(".badge").inner_text() == "Not found"
    assert "Not found in the indexed documents" in turn.locator(".answer").inner_text()
    assert turn.locator(".nearest .chip").count() >= 1
    assert len(site.stub.chat_requests) == answering  # the model was never asked


def test_verification_warnings_are_shown_beside_the_answer(tab: Any, site: Site) -> None:
    page_tab = tab(locale="zh-CN")
    turn = page_tab.ask("犹豫期和体检有什么规定？")
    warnings = turn.locator(".warnings")
    assert "8888" in warnings.inner_text()


def test_a_model_failure_is_shown_and_the_next_question_is_answered(tab: Any, site: Site) -> None:
    page_tab = tab()
    site.stub.malformed()  # the model's stream breaks
    failed = page_tab.ask("犹豫期有多长？")
    assert failed.locator(".error").count() == 1 and failed.locator(".chips").count() == 0
    answered = page_tab.ask("犹豫期有多长？")
    assert "犹豫期" in answered.locator(".answer").inner_text()
    assert page_tab.chat_requests()[1]["messages"] == [{"role": "user", "content": "犹豫期有多长？"}]  # not kept


def test_wrong_key_is_rejected(tab: Any, site: Site) -> None:
    page = tab(key=None).page
    dialog = page.locator("#key-dialog")
    dialog.wait_for()
    assert page.locator("#key-error").is_hidden()  # asked, not yet refused
    page.fill("#key-input", "not-the-key")
    page.click("#key-submit")
    page.locator("#key-error").wait_for()
    assert "rejected" in page.inner_text("#key-error")
    assert page.evaluate("sessionStorage.getItem('rag.apiKey')") is None
    page.screenshot(path=str(site.index.parent / "wrong-key.png"))
    page.fill("#key-input", KEY)
    page.click("#key-submit")
    page.locator("#status dd[data-field=documents]").wait_for()
    assert dialog.is_hidden()


def test_upload_shows_each_file_success_or_error(tab: Any, site: Site, tmp_path: Path) -> None:
    page = tab().page
    page.locator("#upload-panel").wait_for()
    documents = int(page.locator("#status dd[data-field=documents]").inner_text())
    good = tmp_path / "宠物医疗附加险.md"
    front = "---\nproduct: 宠物医疗附加险\nedition: 2024版\neffective_from: 2024-01-01\n---\n"
    body = "# 宠物医疗附加险\n\n## 保障范围\n\n本附加险承担宠物意外受伤的门诊费用，最高500元。\n"
    good.write_text(front + body, "utf8")
    broken = tmp_path / "scan.pdf"
    broken.write_bytes(b"%PDF-1.4\nnot really a pdf\n")
    exe = tmp_path / "setup.exe"
    exe.write_bytes(b"MZ\x90\x00")
    page.set_input_files("#upload-files", [str(good), str(broken), str(exe)])
    page.click("#upload-button")
    rows = page.locator("#uploads > li")
    wait_until(
        page,
        "document.querySelectorAll('#uploads > li').length === 3 && "
        "[...document.querySelectorAll('#uploads > li')].every(li => li.dataset.state !== 'uploading')",
    )
    states = {rows.nth(i).locator(".upload-name").inner_text(): rows.nth(i) for i in range(3)}
    assert states[good.name].get_attribute("data-state") == "done"
    assert states[good.name].locator("progress").get_attribute("value") == "100"
    assert "added" in states[good.name].locator(".upload-note").inner_text()
    assert states["scan.pdf"].get_attribute("data-state") == "failed"
    assert "scan.pdf" in states["scan.pdf"].locator(".upload-note").inner_text()
    assert states["setup.exe"].get_attribute("data-state") == "failed"
    assert "unsupported type" in states["setup.exe"].locator(".upload-note").inner_text()
    count = "Number(document.querySelector('#status dd[data-field=documents]').textContent)"
    wait_until(page, f"{count} === {documents + 1}")
    editions = page.locator("#status dd[data-field=editions]").inner_text()  # the status panel lists editions
    assert "宠物医疗附加险 2024版 · 2024-01-01" in editions


def test_planted_markdown_image_never_loads(tab: Any, site: Site) -> None:
    page_tab = tab(locale="zh-CN")
    page = page_tab.page
    turn = page_tab.ask("理赔回执怎么寄送？")
    turn.locator(".chips .chip").first.click()
    page.locator("#viewer mark").wait_for()
    assert f"http://{EVIL_HOST}/pixel.png" in page.inner_text("#viewer-text")  # shown as text, not loaded
    page.wait_for_timeout(300)
    assert not [r.url for r in page_tab.requests if EVIL_HOST in r.url]
    assert page.locator(f"img[src*='{EVIL_HOST}'], a[href*='{EVIL_HOST}']").count() == 0

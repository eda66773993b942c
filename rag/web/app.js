// The chat page of `rag serve`. Plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Every text that comes from the server (answers, passages, file names, errors) goes into the page through
// textContent: only the [n] markers of an answer become elements (citation chips), so Markdown or HTML planted
// in a document or an answer is shown as text and never loads anything.
"use strict";

(() => {
  const KEY_STORE = "rag.apiKey"; // sessionStorage: the key lives as long as the tab
  const LANG_STORE = "rag.lang"; // localStorage: the language switch is remembered
  // The citation markers rag.text.CITATION_MARKER reads: [1], [1, 2], [1-3], 【1】
  const MARKER = /[[【][ \t]*\d+(?:[ \t]*(?:[,、;；]|[-–—~至])[ \t]*\d+)*[ \t]*[\]】]/g;
  const SENTENCE_END = /[。！？!?；;\n]|\.(?=\s)/g;

  const $ = (id) => document.getElementById(id);
  const state = { lang: "en", history: [], turns: [], config: null, status: null, busy: false, viewer: 0 };

  class AuthError extends Error {}

  // ----- language -----

  function pickLanguage() {
    const saved = localStorage.getItem(LANG_STORE);
    if (saved === "zh" || saved === "en") return saved;
    return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  function t(key, ...args) {
    const table = window.RAG_I18N[state.lang] || window.RAG_I18N.en;
    const value = key in table ? table[key] : window.RAG_I18N.en[key];
    if (value === undefined) return key;
    return typeof value === "function" ? value(...args) : value;
  }

  function applyLanguage() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    }
    $("lang-switch").textContent = t("switchTo");
    renderStatus();
    for (const turn of state.turns) renderTurn(turn);
  }

  // ----- the API, with the key -----

  function apiKey() {
    return sessionStorage.getItem(KEY_STORE);
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const key = apiKey();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    let response;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (_) {
      throw new Error(t("networkError"));
    }
    if (response.status === 401) {
      askForKey(Boolean(key));
      throw new AuthError(t("keyWrong"));
    }
    return response;
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || `HTTP ${response.status}`;
    } catch (_) {
      return `HTTP ${response.status}`;
    }
  }

  function askForKey(wrong) {
    sessionStorage.removeItem(KEY_STORE);
    $("key-error").hidden = !wrong;
    const dialog = $("key-dialog");
    if (!dialog.open) dialog.showModal();
    $("key-input").focus();
  }

  function submitKey(event) {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("key-input").value = "";
    $("key-dialog").close();
    boot();
  }

  // ----- start-up and the status panel -----

  async function boot() {
    try {
      const response = await api("v1/web/config");
      if (!response.ok) throw new Error(await errorOf(response));
      state.config = await response.json();
    } catch (error) {
      if (!(error instanceof AuthError)) showError($("status-error"), error.message);
      return;
    }
    $("upload-panel").hidden = !state.config.allow_ingest;
    await refreshStatus();
  }

  async function refreshStatus() {
    try {
      const response = await api("v1/status");
      if (!response.ok) throw new Error(await errorOf(response));
      state.status = await response.json();
      $("status-error").hidden = true;
    } catch (error) {
      if (!(error instanceof AuthError)) showError($("status-error"), error.message);
    }
    renderStatus();
  }

  function renderStatus() {
    const list = $("status");
    list.replaceChildren();
    const status = state.status;
    if (!status) return;
    const rows = [
      ["documents", status.documents],
      ["chunks", status.chunks],
      ["embedder", status.embedder],
      ["answerMode", status.answer_mode === "llm" ? t("modeLlm") : t("modeExtractive")],
    ];
    if (status.editions !== undefined) {
      const editions = Array.isArray(status.editions) ? status.editions.length : status.editions;
      rows.push(["editions", typeof editions === "object" ? JSON.stringify(editions) : editions]);
    }
    for (const [key, value] of rows) {
      const term = document.createElement("dt");
      term.textContent = t(key);
      const detail = document.createElement("dd");
      detail.textContent = String(value);
      detail.dataset.field = key;
      list.append(term, detail);
    }
  }

  function showError(element, message) {
    element.textContent = `${t("errorPrefix")}: ${message}`;
    element.hidden = false;
  }

  // ----- asking, streamed -----

  async function ask(question) {
    if (state.busy) return;
    state.busy = true;
    $("ask-button").disabled = true;
    $("chat-error").hidden = true;
    $("empty-hint").hidden = true;
    const turn = { question, text: "", deltas: 0, result: null, error: null, element: null };
    state.turns.push(turn);
    renderTurn(turn);
    const messages = [...state.history, { role: "user", content: question }];
    try {
      const response = await api("v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "rag", stream: true, messages }),
      });
      if (!response.ok) throw new Error(await errorOf(response));
      const { text, last } = await readStream(response, (soFar) => {
        turn.text = soFar;
        turn.deltas += 1;
        renderStreaming(turn);
      });
      turn.result = resultOf(text, last);
      state.history = [...messages, { role: "assistant", content: turn.result.answer }];
    } catch (error) {
      if (error instanceof AuthError) {
        // not asked: give the question back, to send again once the key is in
        state.turns.pop();
        turn.element.remove();
        $("question").value = question;
      } else {
        turn.error = error.message;
      }
    } finally {
      state.busy = false;
      $("ask-button").disabled = false;
    }
    if (state.turns.includes(turn)) renderTurn(turn);
  }

  // Server-sent events from /v1/chat/completions: OpenAI chunks; the last one before [DONE] carries `rag`.
  async function readStream(response, onText) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let text = "";
    let last = null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (!data) continue;
        if (data === "[DONE]") return { text, last };
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || "stream error");
        const choice = (chunk.choices || [])[0];
        if (choice && choice.delta && choice.delta.content) {
          text += choice.delta.content;
          onText(text);
        }
        if (chunk.rag || (choice && choice.finish_reason)) last = chunk;
      }
    }
    return { text, last };
  }

  // What the page shows of an answer: the `rag` object of the contract, or what an older server sends.
  function resultOf(text, last) {
    const rag = (last && last.rag) || {};
    return {
      mode: rag.mode || (last && last.rag_mode) || "llm",
      answer: typeof rag.answer === "string" ? rag.answer : text,
      question: rag.question,
      condensed: rag.condensed_question,
      model: rag.model ?? null,
      seed: rag.seed ?? null,
      citations: rag.citations || (last && last.citations) || [],
      passages: rag.passages || [],
      warnings: rag.warnings || [],
      unsupported: rag.unsupported_sentences || [],
    };
  }

  // ----- rendering a turn -----

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function basename(path) {
    return String(path || "").split(/[\\/]/).pop();
  }

  function label(item) {
    let text = `[${item.n}] ${basename(item.source)} · ${t("page", item.page)}`;
    if (item.clause) text += ` · ${item.clause}`;
    return text;
  }

  function renderTurn(turn) {
    const li = turn.element || element("li", "turn");
    if (!turn.element) {
      turn.element = li;
      $("log").append(li);
    }
    li.replaceChildren();
    const asked = element("div", "question-bubble");
    asked.append(element("span", "who", t("you")), element("p", "question-text", turn.question));
    const box = element("div", "answer-box");
    li.append(asked, box);
    const result = turn.result;
    if (!result && !turn.error) {
      const body = element("p", "answer", turn.text || t("thinking"));
      body.dataset.state = "streaming";
      body.dataset.deltas = String(turn.deltas);
      box.append(body);
      turn.body = body;
    }
    if (result) renderResult(box, turn, result);
    if (turn.error && turn.text) box.append(element("p", "answer partial", turn.text)); // what came before it broke
    if (turn.error) box.append(element("p", "error", `${t("errorPrefix")}: ${turn.error}`));
    li.scrollIntoView({ block: "end" });
  }

  function renderStreaming(turn) {
    if (!turn.body) return;
    turn.body.textContent = turn.text;
    turn.body.dataset.deltas = String(turn.deltas);
  }

  function renderResult(box, turn, result) {
    box.classList.toggle("refused", result.mode === "refused");
    const meta = element("p", "meta");
    const mode = { llm: "modeLlm", extractive: "modeExtractive", refused: "modeRefused" }[result.mode] || "modeLlm";
    meta.append(element("span", `badge mode-${result.mode}`, t(mode)));
    if (result.model) meta.append(element("span", "model", `${t("model")}: ${result.model}`));
    if (result.model && result.seed !== null) meta.append(element("span", "seed", `${t("seed")}: ${result.seed}`));
    box.append(meta);
    if (result.condensed && result.question && result.condensed !== result.question) {
      box.append(element("p", "condensed", `${t("searchedFor")}: ${result.condensed}`));
    }
    const body = element("p", "answer");
    body.dataset.state = "done";
    body.dataset.deltas = String(turn.deltas);
    const claims = renderAnswer(body, result.answer, result.citations);
    box.append(body);

    if (result.citations.length) {
      const chips = element("div", "chips");
      chips.append(element("span", "chips-label", `${t("sources")}:`));
      for (const citation of result.citations) {
        chips.append(chip(citation, label(citation), claims.get(citation.n)));
      }
      box.append(chips);
    }
    if (result.warnings.length || result.unsupported.length) {
      const aside = element("div", "warnings");
      if (result.warnings.length) {
        aside.append(element("h3", null, t("warnings")));
        const list = element("ul");
        for (const warning of result.warnings) list.append(element("li", null, warning));
        aside.append(list);
      }
      if (result.unsupported.length) {
        aside.append(element("h3", null, t("unsupported")));
        const list = element("ul");
        for (const sentence of result.unsupported) list.append(element("li", null, sentence));
        aside.append(list);
      }
      box.append(aside);
    }
    if (result.mode === "refused" && result.passages.length) {
      const nearest = element("div", "nearest");
      nearest.append(element("h3", null, t("nearest")));
      const list = element("ol");
      for (const passage of result.passages) {
        const item = element("li");
        item.append(chip(passage, label(passage), null), element("p", "excerpt", excerpt(passage.text)));
        list.append(item);
      }
      nearest.append(list);
      box.append(nearest);
    }
  }

  function excerpt(text) {
    const flat = String(text || "").replace(/\s+/g, " ").trim();
    return flat.length > 160 ? `${flat.slice(0, 160)}…` : flat;
  }

  // The answer as text, each [n] marker a chip; returns the sentence citing each source (for the highlight).
  function renderAnswer(body, text, citations) {
    const byNumber = new Map(citations.map((citation) => [citation.n, citation]));
    const claims = new Map();
    body.replaceChildren();
    let at = 0;
    for (const match of text.matchAll(MARKER)) {
      body.append(document.createTextNode(text.slice(at, match.index)));
      const claim = claimBefore(text, match.index);
      for (const n of markerNumbers(match[0])) {
        const citation = byNumber.get(n);
        if (!citation) {
          body.append(document.createTextNode(`[${n}]`));
          continue;
        }
        if (!claims.has(n)) claims.set(n, claim);
        const inline = chip(citation, `[${n}]`, claim);
        inline.classList.add("inline");
        body.append(inline);
      }
      at = match.index + match[0].length;
    }
    body.append(document.createTextNode(text.slice(at)));
    return claims;
  }

  function markerNumbers(marker) {
    const numbers = [];
    const inner = marker.slice(1, -1);
    for (const part of inner.split(/[,、;；]/)) {
      const range = part.split(/[-–—~至]/).map((piece) => parseInt(piece.trim(), 10));
      if (range.length === 2 && range[1] >= range[0] && range[1] - range[0] < 20) {
        for (let n = range[0]; n <= range[1]; n += 1) numbers.push(n);
      } else if (!Number.isNaN(range[0])) {
        numbers.push(range[0]);
      }
    }
    return numbers;
  }

  // The sentence that ends where a marker stands: "…十五日。[1]" cites "…十五日".
  function claimBefore(text, index) {
    const head = text.slice(0, index).replace(MARKER, " ").replace(/[\s。.!！?？;；]+$/, "");
    let start = 0;
    for (const match of head.matchAll(SENTENCE_END)) start = match.index + match[0].length;
    return head.slice(start).trim();
  }

  function chip(item, text, claim) {
    const button = element("button", "chip", text);
    button.type = "button";
    button.title = label(item); // the whole label, where a narrow screen cuts the chip short
    button.dataset.chunk = item.chunk_id;
    button.dataset.n = String(item.n);
    button.addEventListener("click", () => openPassage(item, claim));
    return button;
  }

  // ----- the passage viewer -----

  async function openPassage(item, claim) {
    const ticket = ++state.viewer;
    const dialog = $("viewer");
    $("viewer-title").textContent = `[${item.n}] ${basename(item.source)}`;
    $("viewer-meta").textContent = "";
    $("viewer-path").textContent = "";
    $("viewer-text").textContent = "…";
    $("viewer-error").hidden = true;
    $("viewer-figure").hidden = true;
    $("viewer-pages").replaceChildren();
    releaseImage();
    if (!dialog.open) dialog.showModal();
    try {
      let url = `v1/sources/${encodeURIComponent(item.chunk_id)}`;
      if (claim) url += `?cite=${encodeURIComponent(claim.slice(0, 1000))}`;
      const response = await api(url);
      if (!response.ok) throw new Error(await errorOf(response));
      const view = await response.json();
      if (ticket !== state.viewer) return;
      renderPassage(view, item);
      if (view.page_image) await showPage(view, item, ticket);
    } catch (error) {
      if (ticket === state.viewer && !(error instanceof AuthError)) showError($("viewer-error"), error.message);
    }
  }

  function renderPassage(view, item) {
    const where = [view.sources.join(", "), `${t("pages")}: ${view.pages.join(", ")}`];
    if (item.clause || view.clause) where.push(item.clause || view.clause);
    $("viewer-meta").textContent = where.join(" · ");
    $("viewer-path").textContent = view.heading_path.join(" › ");
    const box = $("viewer-text");
    box.replaceChildren();
    const span = view.highlight;
    if (span) {
      const mark = element("mark", null, view.text.slice(span[0], span[1]));
      box.append(view.text.slice(0, span[0]), mark, view.text.slice(span[1]));
      mark.scrollIntoView({ block: "center" });
    } else {
      box.textContent = view.text;
    }
  }

  async function showPage(view, item, ticket, chosen) {
    const page = chosen || view.highlight_page || (view.pages.includes(item.page) ? item.page : view.page);
    const pager = $("viewer-pages");
    pager.replaceChildren();
    if (view.pages.length > 1) {
      for (const number of view.pages) {
        const button = element("button", number === page ? "page-button current" : "page-button", t("page", number));
        button.type = "button";
        button.addEventListener("click", () => {
          const again = ++state.viewer;
          showPage(view, item, again, number).catch((error) => showError($("viewer-error"), error.message));
        });
        pager.append(button);
      }
    }
    const response = await api(`v1/sources/${encodeURIComponent(view.chunk_id)}/page.png?page=${page}`);
    if (!response.ok) throw new Error(await errorOf(response));
    const blob = await response.blob();
    if (ticket !== state.viewer) return;
    const image = $("viewer-image");
    releaseImage();
    image.src = URL.createObjectURL(blob);
    image.alt = t("pageImage", page);
    $("viewer-caption").textContent = `${t("pageImage", page)} · ${basename(view.source)}`;
    $("viewer-figure").hidden = false;
  }

  function releaseImage() {
    const image = $("viewer-image");
    if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    image.removeAttribute("src");
  }

  // ----- uploads -----

  async function uploadAll(event) {
    event.preventDefault();
    const input = $("upload-files");
    const chosen = [...input.files];
    input.value = "";
    $("upload-button").disabled = true;
    for (const file of chosen) await uploadOne(file);
    $("upload-button").disabled = false;
    await refreshStatus();
  }

  function uploadOne(file) {
    return new Promise((resolve) => {
      const row = element("li", "upload");
      const progress = element("progress");
      progress.max = 100;
      progress.value = 0;
      const note = element("span", "upload-note", t("uploading"));
      row.append(element("span", "upload-name", file.name), progress, note);
      row.dataset.state = "uploading";
      $("uploads").append(row);
      const finish = (ok, message) => {
        row.dataset.state = ok ? "done" : "failed";
        note.textContent = ok ? message : `${t("uploadFailed")}: ${message}`;
        note.classList.toggle("error", !ok);
        resolve();
      };
      const limit = state.config && state.config.max_upload_bytes;
      if (limit && file.size > limit) {
        finish(false, `${file.size} > ${limit} bytes (RAG_MAX_UPLOAD_BYTES)`);
        return;
      }
      const request = new XMLHttpRequest();
      request.open("POST", "v1/ingest");
      const key = apiKey();
      if (key) request.setRequestHeader("Authorization", `Bearer ${key}`);
      request.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
      });
      request.upload.addEventListener("load", () => {
        progress.value = 100;
        note.textContent = t("ingesting");
      });
      request.addEventListener("load", () => {
        let body = null;
        try {
          body = JSON.parse(request.responseText);
        } catch (_) {
          body = null;
        }
        if (request.status === 401) askForKey(true);
        if (request.status !== 200 || !body) {
          finish(false, (body && body.error && body.error.message) || `HTTP ${request.status}`);
        } else if (body.failed && body.failed.length) {
          // the server's report names its own folder: the file's name says enough here
          const errors = body.failed.map((failure) => failure.error.split(failure.path).join(basename(failure.path)));
          finish(false, errors.join("; "));
        } else {
          finish(true, t("uploadDone", body));
        }
      });
      request.addEventListener("error", () => finish(false, t("networkError")));
      const form = new FormData();
      form.append("files", file, file.name);
      request.send(form);
    });
  }

  // ----- wiring -----

  function newConversation() {
    state.history = [];
    state.turns = [];
    $("log").replaceChildren();
    $("empty-hint").hidden = false;
    $("chat-error").hidden = true;
    $("question").focus();
  }

  function start() {
    state.lang = pickLanguage();
    applyLanguage();
    $("lang-switch").addEventListener("click", () => {
      state.lang = state.lang === "zh" ? "en" : "zh";
      localStorage.setItem(LANG_STORE, state.lang);
      applyLanguage();
    });
    $("new-conversation").addEventListener("click", newConversation);
    $("toggle-side").addEventListener("click", () => $("side").classList.toggle("open"));
    $("key-form").addEventListener("submit", submitKey);
    $("viewer").addEventListener("close", releaseImage);
    $("upload-form").addEventListener("submit", uploadAll);
    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const question = $("question").value.trim();
      if (!question || state.busy) return;
      $("question").value = "";
      ask(question);
    });
    $("question").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("ask-form").requestSubmit();
      }
    });
    boot();
  }

  document.addEventListener("DOMContentLoaded", start);
})();

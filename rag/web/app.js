// The chat page of `rag serve`: plain JavaScript modules, no build step, nothing loaded from elsewhere.
//
// Every text that comes from the server (answers, passages, file names, errors) goes into the page through
// textContent: only the [n] markers of an answer become elements (citation chips), so Markdown or HTML planted
// in a document or an answer is shown as text and never loads anything.
import { AuthError, api, errorOf, readStream, rememberKey, resultOf, whenUnauthorised } from "./api.js";
import { renderStreaming, renderTurn } from "./answer.js";
import { $, element, showError } from "./dom.js";
import { pickLanguage, switchLanguage, t, translatePage } from "./i18n.js";
import { uploadAll } from "./uploads.js";
import { releaseImage } from "./viewer.js";

const state = { history: [], turns: [], config: null, status: null, busy: false };

function applyLanguage() {
  translatePage();
  $("lang-switch").textContent = t("switchTo");
  renderStatus();
  for (const turn of state.turns) renderTurn(turn);
}

// ----- the key -----

function askForKey(wrong) {
  $("key-error").hidden = !wrong;
  const dialog = $("key-dialog");
  if (!dialog.open) dialog.showModal();
  $("key-input").focus();
}

function submitKey(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  rememberKey(key);
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
  for (const [key, value] of rows) {
    const detail = element("dd", null, String(value));
    detail.dataset.field = key;
    list.append(element("dt", null, t(key)), detail);
  }
  const products = Object.entries(status.products || {});
  if (products.length) {
    const detail = element("dd");
    detail.dataset.field = "editions";
    const items = element("ul", "editions");
    for (const [product, editions] of products) {
      for (const edition of editions) items.append(element("li", null, editionText(product, edition)));
    }
    detail.append(items);
    list.append(element("dt", null, t("editions")), detail);
  }
}

// "安心e生 2023版 · 2023-01-01 – 2023-12-31": the product's editions, as the index records them
function editionText(product, edition) {
  const name = [product, edition.edition].filter(Boolean).join(" ");
  if (!edition.effective_from && !edition.effective_to) return name;
  return `${name} · ${edition.effective_from || "…"} – ${edition.effective_to || "…"}`;
}

// ----- asking, streamed, with the conversation so far -----

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

function newConversation() {
  state.history = [];
  state.turns = [];
  $("log").replaceChildren();
  $("empty-hint").hidden = false;
  $("chat-error").hidden = true;
  $("question").focus();
}

// ----- wiring -----

function start() {
  pickLanguage();
  applyLanguage();
  whenUnauthorised(askForKey);
  $("lang-switch").addEventListener("click", () => {
    switchLanguage();
    applyLanguage();
  });
  $("new-conversation").addEventListener("click", newConversation);
  $("toggle-side").addEventListener("click", () => $("side").classList.toggle("open"));
  $("key-form").addEventListener("submit", submitKey);
  $("viewer").addEventListener("close", releaseImage);
  $("upload-form").addEventListener("submit", (event) => uploadAll(event, state.config, refreshStatus));
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

start(); // a module runs once the document is parsed

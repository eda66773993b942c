// One turn of the conversation: the question, the answer as text with each [n] marker a citation chip, the
// sources, warnings, and for a refusal the nearest passages.
import { $, element, basename } from "./dom.js";
import { t } from "./i18n.js";
import { openPassage } from "./viewer.js";

// The citation markers rag.text.CITATION_MARKER reads: [1], [1, 2], [1-3], 【1】
const MARKER = /[[【][ \t]*\d+(?:[ \t]*(?:[,、;；]|[-–—~至])[ \t]*\d+)*[ \t]*[\]】]/g;
const SENTENCE_END = /[。！？!?；;\n]|\.(?=\s)/g;

export function label(item) {
  let text = `[${item.n}] ${basename(item.source)} · ${t("page", item.page)}`;
  if (item.clause) text += ` · ${item.clause}`;
  return text;
}

export function renderTurn(turn) {
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

export function renderStreaming(turn) {
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
  const edition = item.edition && [item.edition.product, item.edition.edition].filter(Boolean).join(" ");
  if (edition) button.title += ` · ${edition}`;
  button.dataset.chunk = item.chunk_id;
  button.dataset.n = String(item.n);
  button.addEventListener("click", () => openPassage(item, claim));
  return button;
}

// The server's API with the key: requests, errors, and the stream of /v1/chat/completions.
import { t } from "./i18n.js";

const KEY_STORE = "rag.apiKey"; // sessionStorage: the key lives as long as the tab

export class AuthError extends Error {}

let onUnauthorised = () => {};

// What to do when the server refuses the key (or wants one): `wrong` when a key was sent.
export function whenUnauthorised(handler) {
  onUnauthorised = handler;
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORE);
}

export function rememberKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

export function unauthorised(wrong) {
  rememberKey(null);
  onUnauthorised(wrong);
}

export async function api(path, options = {}) {
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
    unauthorised(Boolean(key));
    throw new AuthError(t("keyWrong"));
  }
  return response;
}

export async function errorOf(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || `HTTP ${response.status}`;
  } catch (_) {
    return `HTTP ${response.status}`;
  }
}

// Server-sent events from /v1/chat/completions: OpenAI chunks; the last one before [DONE] carries `rag`.
export async function readStream(response, onText) {
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
export function resultOf(text, last) {
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

// Small DOM helpers. Text from the server only ever enters the page through textContent.
import { t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

export function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

export function basename(path) {
  return String(path || "").split(/[\\/]/).pop();
}

export function showError(target, message) {
  target.textContent = `${t("errorPrefix")}: ${message}`;
  target.hidden = false;
}

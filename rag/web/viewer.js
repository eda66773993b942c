// The passage viewer: a cited passage with the cited sentence highlighted and, for a PDF, the page itself.
import { AuthError, api, errorOf } from "./api.js";
import { $, basename, element, showError } from "./dom.js";
import { t } from "./i18n.js";

let viewing = 0; // the latest request: an older answer arriving late is dropped

export async function openPassage(item, claim) {
  const ticket = ++viewing;
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
    if (ticket !== viewing) return;
    renderPassage(view, item);
    if (view.page_image) await showPage(view, item, ticket);
  } catch (error) {
    if (ticket === viewing && !(error instanceof AuthError)) showError($("viewer-error"), error.message);
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
        const again = ++viewing;
        showPage(view, item, again, number).catch((error) => showError($("viewer-error"), error.message));
      });
      pager.append(button);
    }
  }
  const response = await api(`v1/sources/${encodeURIComponent(view.chunk_id)}/page.png?page=${page}`);
  if (!response.ok) throw new Error(await errorOf(response));
  const blob = await response.blob();
  if (ticket !== viewing) return;
  const image = $("viewer-image");
  releaseImage();
  image.src = URL.createObjectURL(blob);
  image.alt = t("pageImage", page);
  $("viewer-caption").textContent = `${t("pageImage", page)} · ${basename(view.source)}`;
  $("viewer-figure").hidden = false;
}

export function releaseImage() {
  const image = $("viewer-image");
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  image.removeAttribute("src");
}

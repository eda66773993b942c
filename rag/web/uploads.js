// The upload panel: each file sent on its own (XMLHttpRequest, for its upload progress), with its own result or
// error from the ingest report.
import { apiKey, unauthorised } from "./api.js";
import { $, basename, element } from "./dom.js";
import { t } from "./i18n.js";

export async function uploadAll(event, config, afterwards) {
  event.preventDefault();
  const input = $("upload-files");
  const chosen = [...input.files];
  input.value = "";
  $("upload-button").disabled = true;
  for (const file of chosen) await uploadOne(file, config);
  $("upload-button").disabled = false;
  await afterwards();
}

function uploadOne(file, config) {
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
    const limit = config && config.max_upload_bytes;
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
      if (request.status === 401) unauthorised(true);
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

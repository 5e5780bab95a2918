// The search page: upload or drop an image, or start from random items; click any result
// to search from it ("more like this"). Talks only to the JSON API next to it.
"use strict";

const $ = (id) => document.getElementById(id);
const fileInput = $("file-input");
const dropZone = $("drop-zone");
const preview = $("query-preview");
const results = $("results");
const statusLine = $("status");
const title = $("results-title");

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

async function callApi(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

let uploadUrl = null;  // the upload's preview, revoked when another query replaces it

function showQuery(src, caption) {
  if (uploadUrl !== null && uploadUrl !== src) URL.revokeObjectURL(uploadUrl);
  uploadUrl = src.startsWith("blob:") ? src : null;
  preview.src = src;
  preview.hidden = false;
  $("drop-text").hidden = true;
  $("query-caption").textContent = caption;
}

function showItems(items, heading) {
  results.replaceChildren();
  const template = $("card-template");
  for (const item of items) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.id = item.id;
    card.title = item.source;
    card.querySelector("img").src = item.image_url;
    card.querySelector("img").alt = item.label || item.source;
    card.querySelector(".label").textContent = item.label || "unlabelled";
    card.querySelector(".distance").textContent =
      item.distance === undefined ? `#${item.id}` : `#${item.id} · d = ${item.distance.toFixed(3)}`;
    card.addEventListener("click", () => moreLike(item));
    results.appendChild(card);
  }
  title.textContent = heading;
  title.hidden = false;
}

const k = () => $("k-select").value;

// The server's own time for a search, and for uploads where it went.
function searchTime(answer) {
  const total = `searched in ${(answer.seconds * 1000).toFixed(1)} ms`;
  const t = answer.timing;
  if (!t) return total;
  const together = t.batch > 1 ? `, in a batch of ${t.batch}` : "";
  return `${total}: decode ${t.decode_ms.toFixed(1)}, wait ${t.wait_ms.toFixed(1)}, ` +
    `embed ${t.embed_ms.toFixed(1)} (${t.runtime}${together}), search ${t.search_ms.toFixed(1)} ms`;
}

// One search (by upload or by item): show its results and timing, or the server's reason.
async function runSearch(url, options, { searching, target, onError = () => {} }) {
  setStatus(`searching for ${searching}...`);
  try {
    const answer = await callApi(url, options);
    showItems(answer.results, `${answer.results.length} most similar to ${target}`);
    setStatus(searchTime(answer));
  } catch (error) {
    onError();
    setStatus(error.message, true);
  }
}

async function searchFile(file) {
  if (!file) return;
  showQuery(URL.createObjectURL(file), file.name);
  const form = new FormData();
  form.append("image", file);
  form.append("k", k());
  await runSearch("/api/search", { method: "POST", body: form }, {
    searching: `images like ${file.name}`,
    target: file.name,
    onError: () => {
      results.replaceChildren();
      title.hidden = true;
      preview.hidden = true;  // the browser may not be able to show what the server refused
      $("drop-text").hidden = false;
    },
  });
}

async function moreLike(item) {
  showQuery(item.image_url, `item #${item.id}${item.label ? ` (${item.label})` : ""}`);
  await runSearch(`/api/items/${item.id}/similar?k=${k()}`, undefined, {
    searching: `items like #${item.id}`,
    target: `item #${item.id}`,
  });
}

async function browseRandom() {
  setStatus("picking random items...");
  try {
    const answer = await callApi(`/api/items?random=${k()}`);
    showItems(answer.items, "Random items: click one to find its lookalikes");
    setStatus("");
  } catch (error) {
    setStatus(error.message, true);
  }
}

fileInput.addEventListener("change", () => searchFile(fileInput.files[0]));
$("random-button").addEventListener("click", browseRandom);
for (const name of ["dragenter", "dragover"]) {
  dropZone.addEventListener(name, (event) => { event.preventDefault(); dropZone.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  dropZone.addEventListener(name, () => dropZone.classList.remove("over"));
}
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  searchFile(event.dataTransfer.files[0]);
});

callApi("/api/health")
  .then((health) => {
    $("summary").textContent = `${health.items.toLocaleString()} items · ${health.kind} index · model ${health.model}`;
    browseRandom();
  })
  .catch((error) => setStatus(`the service is not answering: ${error.message}`, true));

// The search page: plain DOM, no framework, no CDN (it must work offline).
// Text from the index is only ever inserted with textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const ALL_PATHS = ["bm25", "sparse", "dense"];
  const form = $("search-form");
  const queryInput = $("query");
  const collectionSelect = $("collection");
  const statusLine = $("status");
  const results = $("results");
  const keyInput = $("api-key");
  let lastQuery = null;
  let inFlight = null;

  keyInput.value = sessionStorage.getItem("hybrid-search-key") || "";
  keyInput.addEventListener("change", () => {
    sessionStorage.setItem("hybrid-search-key", keyInput.value);
    loadCollections();
  });

  function headers() {
    const h = { "Content-Type": "application/json", Accept: "application/json" };
    if (keyInput.value) h.Authorization = "Bearer " + keyInput.value;
    return h;
  }

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(isError));
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error.message + " (" + body.error.code + ")";
    } catch (_) { /* not JSON */ }
    return "HTTP " + response.status;
  }

  function selectedPaths() {
    return ALL_PATHS.filter((p) => { const box = $("path-" + p); return box.checked && !box.disabled; });
  }

  function applyCollectionPaths() {
    const option = collectionSelect.selectedOptions[0];
    const available = option ? option.dataset.paths.split(",") : ALL_PATHS;
    for (const p of ALL_PATHS) {
      const box = $("path-" + p);
      box.disabled = !available.includes(p);
      box.parentElement.classList.toggle("disabled", box.disabled);
    }
  }

  async function loadCollections() {
    try {
      const response = await fetch("/v1/collections", { headers: headers() });
      if (!response.ok) { setStatus(await errorText(response), true); return; }
      const body = await response.json();
      const previous = collectionSelect.value;
      collectionSelect.replaceChildren();
      for (const c of body.collections) {
        const option = document.createElement("option");
        option.value = c.name;
        option.textContent = c.name + " (" + c.chunks + " chunks)";
        option.dataset.paths = c.paths.join(",");
        collectionSelect.appendChild(option);
      }
      if (previous) collectionSelect.value = previous;
      if (!body.collections.length) setStatus("No collections yet: create one and add documents through the API.", false);
      applyCollectionPaths();
    } catch (err) {
      setStatus("Cannot reach the server: " + err, true);
    }
  }

  function escapeRegExp(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  // Wrap every occurrence of a matched term in <mark>. Terms are the exact
  // surface strings the server's analyzer matched in this text.
  function highlighted(text, terms) {
    const fragment = document.createDocumentFragment();
    const usable = (terms || []).filter((t) => t && t.trim()).sort((a, b) => b.length - a.length);
    if (!usable.length) { fragment.append(text); return fragment; }
    const parts = usable.map((t) => {
      const body = escapeRegExp(t);
      return /^\w+$/.test(t) ? "\\b" + body + "\\b" : body;
    });
    const pattern = new RegExp("(" + parts.join("|") + ")", "gu");
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      if (match.index > last) fragment.append(text.slice(last, match.index));
      const mark = document.createElement("mark");
      mark.textContent = match[0];
      fragment.append(mark);
      last = match.index + match[0].length;
    }
    if (last < text.length) fragment.append(text.slice(last));
    return fragment;
  }

  function fmt(x) { return x === null || x === undefined ? "–" : Number(x).toFixed(4); }

  function scoreTable(hit, paths, firstStageWeight) {
    const table = document.createElement("table");
    table.className = "scores";
    const head = table.createTHead().insertRow();
    for (const label of ["path", "rank", "score"]) {
      const th = document.createElement("th");
      th.textContent = label;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const p of paths) {
      const row = body.insertRow();
      row.className = "path-row path-" + p;
      row.dataset.path = p;
      const s = hit.paths && hit.paths[p];
      row.insertCell().textContent = p;
      const rank = row.insertCell();
      const score = row.insertCell();
      if (s) { rank.textContent = String(s.rank); score.textContent = fmt(s.score); }
      else { rank.textContent = "–"; score.textContent = "not returned"; rank.className = score.className = "absent"; }
    }
    const fused = body.insertRow();
    fused.className = "fused-row";
    fused.insertCell().textContent = "fused";
    fused.insertCell().textContent = String(hit.rank);
    fused.insertCell().textContent = fmt(hit.fused_score);
    if (hit.rerank_score !== null && hit.rerank_score !== undefined) {
      const rr = body.insertRow();
      rr.insertCell().textContent = "rerank";
      rr.insertCell().textContent = "";
      rr.insertCell().textContent = fmt(hit.rerank_score);
    }
    // The order's own score, only when the fused score was mixed in (w > 0):
    // otherwise it equals the rerank score.
    if (firstStageWeight && hit.combined_score !== null && hit.combined_score !== undefined) {
      const cb = body.insertRow();
      cb.className = "combined-row";
      cb.insertCell().textContent = "combined (w=" + firstStageWeight + ")";
      cb.insertCell().textContent = "";
      cb.insertCell().textContent = fmt(hit.combined_score);
    }
    return table;
  }

  function render(body) {
    results.replaceChildren();
    results.dataset.paths = body.paths.join(",");
    for (const hit of body.hits) {
      const li = document.createElement("li");
      li.className = "hit";
      li.dataset.docId = hit.doc_id;
      li.dataset.chunkId = hit.chunk_id;
      const title = document.createElement("h2");
      title.textContent = hit.rank + ". " + (hit.title || hit.doc_id);
      const meta = document.createElement("div");
      meta.className = "meta";
      const where = [hit.doc_id];
      if (hit.source && hit.source !== hit.doc_id) where.push(hit.source);
      if (hit.page !== null && hit.page !== undefined) where.push("page " + hit.page);
      if (hit.heading_path && hit.heading_path.length) where.push(hit.heading_path.join(" › "));
      meta.textContent = where.join(" · ");
      const text = document.createElement("p");
      text.className = "text";
      text.appendChild(highlighted(hit.text, hit.matched_terms));
      li.append(title, meta, text, scoreTable(hit, body.paths, body.rerank_first_stage_weight));
      results.appendChild(li);
    }
    const ms = body.timings_ms && body.timings_ms.total !== undefined ? Math.round(body.timings_ms.total) + " ms" : "";
    let summary = body.hits.length + " hit" + (body.hits.length === 1 ? "" : "s") + (ms ? " in " + ms : "") +
      " · paths: " + body.paths.join(", ") + " · fusion: " + body.fusion + (body.reranked ? " · reranked" : "");
    if (!body.confident) summary += " · no confident result";
    setStatus(summary, false);
    results.dataset.state = "done";
  }

  async function search() {
    const query = queryInput.value.trim();
    if (!query) return;
    const paths = selectedPaths();
    if (!paths.length) { setStatus("Choose at least one path.", true); return; }
    const request = { query: query, k: Number($("k").value) || 10, paths: paths, explain: true };
    const fusion = $("fusion").value;
    if (fusion) request.fusion = fusion;
    const rerank = $("rerank").value;
    if (rerank) request.rerank = rerank === "on";
    const collection = collectionSelect.value;
    if (!collection) { setStatus("No collection to search.", true); return; }
    lastQuery = query;
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    results.dataset.state = "loading";
    $("search-button").disabled = true;
    try {
      const response = await fetch("/v1/collections/" + encodeURIComponent(collection) + "/search", {
        method: "POST", headers: headers(), body: JSON.stringify(request), signal: controller.signal,
      });
      if (!response.ok) {
        results.replaceChildren();
        results.dataset.state = "error";
        setStatus(await errorText(response), true);
        return;
      }
      render(await response.json());
    } catch (err) {
      if (err.name !== "AbortError") { results.dataset.state = "error"; setStatus("Request failed: " + err, true); }
    } finally {
      if (inFlight === controller) { inFlight = null; $("search-button").disabled = false; }
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
  // Changing an option re-runs the last query, so its effect shows at once.
  for (const id of ["path-bm25", "path-sparse", "path-dense", "fusion", "rerank"]) {
    $(id).addEventListener("change", () => { if (lastQuery) search(); });
  }
  collectionSelect.addEventListener("change", () => { applyCollectionPaths(); if (lastQuery) search(); });
  loadCollections();
})();

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

  // The filter field: "FIELD OP VALUE" conditions separated by ";" (the CLI's
  // --filter syntax; values are JSON when they parse), or plain words, which
  // match inside the document id (its path). Fields are those of the API's filters.
  const FILTER = /^\s*([A-Za-z_][\w.\-]*)\s*(==|!=|<=|>=|<|>|=|not in|in|like)\s*(.*?)\s*$/s;
  const TEXT_FIELDS = ["doc_id", "source", "title", "heading"];
  const FIELDS = TEXT_FIELDS.concat(["page", "chunk_index"]);

  function filterValue(text) {
    try { return JSON.parse(text); } catch (_) { return text; }
  }

  function parseFilters(text) {
    const filters = [];
    for (const part of text.split(";").map((p) => p.trim()).filter(Boolean)) {
      const match = FILTER.exec(part);
      if (!match || !(FIELDS.includes(match[1]) || match[1].startsWith("metadata."))) {
        filters.push({ field: "doc_id", op: "like", value: "%" + part + "%" });
        continue;
      }
      const field = match[1];
      const op = match[2] === "=" ? "==" : match[2];
      let value = filterValue(match[3]);
      if ((op === "in" || op === "not in") && !Array.isArray(value)) {
        value = match[3].split(",").map((v) => v.trim()).filter(Boolean).map(filterValue);
      }
      if (TEXT_FIELDS.includes(field) && typeof value !== "string" && !Array.isArray(value)) value = match[3];
      filters.push({ field: field, op: op, value: value });
    }
    return filters;
  }

  // A link to the hit's source file. With an API key the browser cannot send
  // it on a plain navigation, so the file is fetched with it and opened from
  // memory (as plain text unless it is a PDF: never as a page of this site).
  function sourceLink(hit, label) {
    const link = document.createElement("a");
    link.className = "source";
    link.href = hit.source_url;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = label;
    link.title = "open the source document" + (hit.page ? " at page " + hit.page : "");
    link.addEventListener("click", async (event) => {
      if (!keyInput.value) return;
      event.preventDefault();
      const [url, anchor] = hit.source_url.split("#");
      const response = await fetch(url, { headers: headers() });
      if (!response.ok) { setStatus(await errorText(response), true); return; }
      const isPdf = (response.headers.get("content-type") || "").startsWith("application/pdf");
      const blob = new Blob([await response.arrayBuffer()], { type: isPdf ? "application/pdf" : "text/plain;charset=utf-8" });
      window.open(URL.createObjectURL(blob) + (anchor ? "#" + anchor : ""), "_blank", "noopener");
    });
    return link;
  }

  function passage(hit) {
    const p = document.createElement("p");
    p.className = "text snippet";
    const snippet = hit.snippet || { text: hit.text, start: 0, end: hit.text.length };
    if (snippet.start > 0) p.append("… ");
    // Blank lines (between paragraphs, around a heading) would only spread the hit out.
    p.appendChild(highlighted(snippet.text.replace(/\n\s*\n/g, "\n"), hit.matched_terms));
    if (snippet.end < hit.text.length) p.append(" …");
    return p;
  }

  function foldedList(folded) {
    const details = document.createElement("details");
    details.className = "folded";
    const summary = document.createElement("summary");
    summary.textContent = "+" + folded.length + " duplicate" + (folded.length === 1 ? "" : "s") + " folded";
    const list = document.createElement("ul");
    for (const copy of folded) {
      const item = document.createElement("li");
      item.textContent = copy.chunk_id + (copy.page ? " · page " + copy.page : "") +
        (copy.similarity < 1 ? " · " + Math.round(copy.similarity * 100) + "% alike" : " · same text");
      list.appendChild(item);
    }
    details.append(summary, list);
    return details;
  }

  function pathRanks(hit, paths) {
    const span = document.createElement("span");
    span.className = "ranks";
    span.textContent = paths.map((p) => {
      const s = hit.paths && hit.paths[p];
      return p + " " + (s ? "#" + s.rank : "–");
    }).join(" · ");
    return span;
  }

  function render(body) {
    results.replaceChildren();
    results.dataset.paths = body.paths.join(",");
    for (const hit of body.hits) {
      const li = document.createElement("li");
      li.className = "hit";
      li.dataset.docId = hit.doc_id;
      li.dataset.chunkId = hit.chunk_id;
      const head = document.createElement("div");
      head.className = "hit-head";
      const title = document.createElement("h2");
      title.textContent = hit.rank + ". " + (hit.title || hit.doc_id);
      // Where the hit is, once: its document (a link when the server serves
      // the file), page and section.
      const where = document.createElement("span");
      where.className = "meta";
      where.append(hit.source_url ? sourceLink(hit, hit.doc_id) : hit.doc_id);
      const extra = [];
      if (hit.page !== null && hit.page !== undefined) extra.push("page " + hit.page);
      const section = (hit.heading_path || []).join(" › ");
      if (section && section !== hit.title) extra.push(section);
      if (extra.length) where.append(" · " + extra.join(" · "));
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = fmt(hit.score);
      head.append(title, where, score);
      const foot = document.createElement("div");
      foot.className = "hit-foot";
      foot.appendChild(pathRanks(hit, body.paths));
      if (hit.folded && hit.folded.length) foot.appendChild(foldedList(hit.folded));
      const explain = document.createElement("details");
      explain.className = "explain";
      const summary = document.createElement("summary");
      summary.textContent = "scores and full text";
      const full = document.createElement("p");
      full.className = "full-text";
      full.appendChild(highlighted(hit.text, hit.matched_terms));
      explain.append(summary, scoreTable(hit, body.paths, body.rerank_first_stage_weight), full);
      foot.appendChild(explain);
      li.append(head, passage(hit), foot);
      results.appendChild(li);
    }
    const ms = body.timings_ms && body.timings_ms.total !== undefined ? Math.round(body.timings_ms.total) + " ms" : "";
    const folded = body.hits.reduce((n, h) => n + ((h.folded && h.folded.length) || 0), 0);
    let summary = body.hits.length + " hit" + (body.hits.length === 1 ? "" : "s") + (ms ? " in " + ms : "") +
      " · paths: " + body.paths.join(", ") + " · fusion: " + body.fusion + (body.reranked ? " · reranked" : "");
    if (folded) summary += " · " + folded + " duplicate" + (folded === 1 ? "" : "s") + " folded";
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
    request.collapse = $("collapse").checked;
    const filters = parseFilters($("filter").value);
    if (filters.length) request.filters = filters;
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
  for (const id of ["path-bm25", "path-sparse", "path-dense", "fusion", "rerank", "collapse"]) {
    $(id).addEventListener("change", () => { if (lastQuery) search(); });
  }
  collectionSelect.addEventListener("change", () => { applyCollectionPaths(); if (lastQuery) search(); });
  loadCollections();
})();

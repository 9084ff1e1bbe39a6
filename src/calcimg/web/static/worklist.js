// Worklist: auto-refresh from /api/results, drag-and-drop upload, flagged filter.
"use strict";
(function () {
  const table = document.getElementById("worklist");
  const body = table.querySelector("tbody");
  const flaggedOnly = document.getElementById("flagged-only");
  const status = document.getElementById("upload-status");
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const zone = document.getElementById("dropzone");
  const refreshMs = parseInt(table.dataset.refreshMs, 10) || 5000;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function human(s) { return (s || "").replace(/_/g, " "); }
  function pill(r) {
    if (r.state !== "done") return el("span", "pill wait", r.state);
    if (r.status !== "ok") { const p = el("span", "pill err", r.status); p.title = r.error || ""; return p; }
    if (r.flag) return el("span", "pill flag", "FLAG " + r.n_findings);
    return el("span", "pill ok", "no finding");
  }
  function row(r) {
    const tr = el("tr");
    tr.dataset.id = r.id;
    if (r.flag) tr.classList.add("flagged");
    if (r.acknowledged) tr.classList.add("acked");
    const th = el("td", "thumb");
    if (r.thumbnail_url) {
      const a = el("a"); a.href = r.url;
      const img = el("img"); img.src = r.thumbnail_url; img.alt = "thumbnail"; img.loading = "lazy";
      a.appendChild(img); th.appendChild(a);
    }
    tr.appendChild(th);
    const fc = el("td", "flagcell"); fc.appendChild(pill(r)); tr.appendChild(fc);
    const pt = el("td");
    const a = el("a", null, r.patient_name || r.patient_id || r.original_name); a.href = r.url;
    pt.appendChild(a);
    pt.appendChild(el("div", "muted", [r.patient_id, r.body_part, r.modality].filter(Boolean).join(" ")));
    tr.appendChild(pt);
    const st = el("td", null, r.accession_number || "");
    st.appendChild(el("div", "muted", [r.study_date, r.original_name].filter(Boolean).join(" ")));
    tr.appendChild(st);
    const tm = el("td", "time", r.received_at.slice(0, 19).replace("T", " ") + " UTC");
    tm.appendChild(el("div", "muted", r.origin));
    tr.appendChild(tm);
    tr.appendChild(el("td", null, human(r.top_pattern)));
    tr.appendChild(el("td", null, human(r.top_category)));
    const seen = el("td");
    if (r.acknowledged) seen.appendChild(el("span", "pill seen", "seen"));
    else if (r.flag) seen.appendChild(el("span", "pill unseen", "not seen"));
    tr.appendChild(seen);
    return tr;
  }
  let lastText = null;
  async function refresh() {
    const url = "/api/results" + (flaggedOnly.checked ? "?flagged=true" : "");
    try {
      const resp = await fetch(url, { headers: { Accept: "application/json" } });
      if (!resp.ok) return;
      const text = await resp.text();
      document.getElementById("refreshed").textContent =
        "updated " + new Date().toLocaleTimeString() + " (every " + refreshMs / 1000 + " s)";
      if (text === lastText) return;  // nothing new: keep the rows (and their thumbnails)
      lastText = text;
      const rows = JSON.parse(text);
      body.replaceChildren();
      if (rows.length === 0) {
        const tr = el("tr", "empty");
        const td = el("td", null, "No images yet.");
        td.colSpan = 8; tr.appendChild(td); body.appendChild(tr);
      }
      for (const r of rows) body.appendChild(row(r));
    } catch (e) { /* server restarting: try again next tick */ }
  }
  flaggedOnly.addEventListener("change", () => {
    history.replaceState(null, "", flaggedOnly.checked ? "/?flagged=true" : "/");
    refresh();
  });
  setInterval(refresh, refreshMs);

  async function upload(files) {
    if (!files || files.length === 0) return;
    const data = new FormData();
    for (const f of files) data.append("files", f, f.name);
    status.replaceChildren(el("span", null, "Uploading " + files.length + " file(s)…"));
    try {
      const resp = await fetch("/upload", { method: "POST", body: data, headers: { Accept: "application/json" } });
      const out = await resp.json().catch(() => ({ accepted: [], errors: ["upload failed: HTTP " + resp.status] }));
      status.replaceChildren();
      if (out.accepted && out.accepted.length)
        status.appendChild(el("span", null, out.accepted.length + " file(s) received; analysing. "));
      for (const e of out.errors || []) status.appendChild(el("span", "error", e));
    } catch (e) {
      status.replaceChildren(el("span", "error", "upload failed: " + e));
    }
    input.value = "";
    refresh();
  }
  form.addEventListener("submit", (ev) => { ev.preventDefault(); upload(input.files); });
  input.addEventListener("change", () => upload(input.files));
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (ev) => { ev.preventDefault(); zone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, (ev) => { ev.preventDefault(); zone.classList.remove("over"); }));
  zone.addEventListener("drop", (ev) => upload(ev.dataTransfer.files));
})();

// Image page: window/level (server re-renders the 16-bit film), zoom and pan, outlines.
"use strict";
(function () {
  const pending = document.getElementById("pending");
  if (pending) {  // not analysed yet: poll until it is, then reload
    const id = pending.dataset.id;
    setInterval(async () => {
      const r = await fetch("/api/results/" + id).then((x) => x.json()).catch(() => null);
      if (r && r.state === "done") location.reload();
    }, 1000);
  }
  const vp = document.getElementById("viewport");
  if (!vp) return;
  const stage = document.getElementById("stage");
  const film = document.getElementById("film");
  const center = document.getElementById("wl-center");
  const width = document.getElementById("wl-width");
  const zoomLabel = document.getElementById("zoom-label");
  const rows = +vp.dataset.rows, cols = +vp.dataset.columns;
  const wc0 = +vp.dataset.wc, ww0 = +vp.dataset.ww;
  let scale = 1, fitScale = 1, tx = 0, ty = 0;

  center.value = wc0; width.value = ww0;
  // While the server renders the new window, preview it at once with a linear SVG
  // filter on the 8-bit film: v' = v * w0/w1 + (c0 - c1 + (w1 - w0)/2) / w1, exact except
  // where the shown window had already clipped.
  let shown = [wc0, ww0];
  const funcs = document.querySelectorAll("#wl-preview feFuncR, #wl-preview feFuncG, #wl-preview feFuncB");
  function preview(c1, w1) {
    const [c0, w0] = shown;
    const slope = w0 / w1, icpt = (c0 - c1 + (w1 - w0) / 2) / w1;
    funcs.forEach((f) => { f.setAttribute("slope", slope); f.setAttribute("intercept", icpt); });
    film.style.filter = "url(#wl-preview)";
  }
  film.addEventListener("load", () => {
    const m = /wc=([-0-9.]+)&ww=([0-9.]+)/.exec(film.src);
    if (m) shown = [+m[1], +m[2]];
    film.style.filter = "";
    preview(+center.value, +width.value);  // the sliders may have moved meanwhile
    if (shown[0] === +(+center.value).toFixed(4) && shown[1] === +(+width.value).toFixed(4)) film.style.filter = "";
  });
  let timer = null;
  function rerender() {
    preview(+center.value, +width.value);
    clearTimeout(timer);
    timer = setTimeout(() => {
      film.src = "/image/" + vp.dataset.id + "/film.png?wc=" + (+center.value).toFixed(4) + "&ww=" + (+width.value).toFixed(4);
    }, 250);
  }
  center.addEventListener("input", rerender);
  width.addEventListener("input", rerender);
  document.getElementById("wl-reset").addEventListener("click", () => { center.value = wc0; width.value = ww0; rerender(); });

  function apply() {
    stage.style.width = cols + "px"; stage.style.height = rows + "px";
    stage.style.transform = "translate(" + tx + "px," + ty + "px) scale(" + scale + ")";
    zoomLabel.textContent = Math.round(scale / fitScale * 100) + "%";
  }
  function fit() {
    fitScale = Math.min(vp.clientWidth / cols, vp.clientHeight / rows);
    scale = fitScale;
    tx = (vp.clientWidth - cols * scale) / 2; ty = (vp.clientHeight - rows * scale) / 2;
    apply();
  }
  function zoomAt(factor, px, py) {
    const ns = Math.min(Math.max(scale * factor, fitScale * 0.5), fitScale * 16);
    tx = px - (px - tx) * ns / scale; ty = py - (py - ty) * ns / scale; scale = ns; apply();
  }
  document.getElementById("zoom-in").addEventListener("click", () => zoomAt(1.5, vp.clientWidth / 2, vp.clientHeight / 2));
  document.getElementById("zoom-out").addEventListener("click", () => zoomAt(1 / 1.5, vp.clientWidth / 2, vp.clientHeight / 2));
  document.getElementById("zoom-fit").addEventListener("click", fit);
  vp.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = vp.getBoundingClientRect();
    zoomAt(ev.deltaY < 0 ? 1.2 : 1 / 1.2, ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  let drag = null;
  vp.addEventListener("pointerdown", (ev) => {
    drag = { x: ev.clientX, y: ev.clientY, tx, ty, wc: +center.value, ww: +width.value, wl: ev.shiftKey };
    vp.classList.add("dragging"); vp.setPointerCapture(ev.pointerId);
  });
  vp.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (drag.wl) {  // PACS convention: horizontal = width, vertical = level
      width.value = Math.max(0.01, drag.ww + dx / 400); center.value = drag.wc - dy / 400; rerender();
    } else { tx = drag.tx + dx; ty = drag.ty + dy; apply(); }
  });
  const end = () => { drag = null; vp.classList.remove("dragging"); };
  vp.addEventListener("pointerup", end); vp.addEventListener("pointercancel", end);
  window.addEventListener("resize", fit);
  document.getElementById("show-outlines").addEventListener("change", (ev) => {
    stage.classList.toggle("hidden-outlines", !ev.target.checked);
  });
  // zoom onto one finding: its box fills about a third of the viewport
  function focusFinding(id) {
    const box = document.querySelector("#outline-" + id + " rect.box");
    if (!box) return;
    const x = +box.getAttribute("x"), y = +box.getAttribute("y");
    const w = +box.getAttribute("width"), h = +box.getAttribute("height");
    scale = Math.min(Math.max(Math.min(vp.clientWidth / (3 * w), vp.clientHeight / (3 * h)), fitScale), fitScale * 16);
    tx = vp.clientWidth / 2 - (x + w / 2) * scale; ty = vp.clientHeight / 2 - (y + h / 2) * scale;
    apply();
  }
  // hovering a finding card highlights its outline; clicking its title zooms onto it
  document.querySelectorAll(".card.finding").forEach((card) => {
    const g = document.getElementById("outline-" + card.dataset.finding);
    card.addEventListener("mouseenter", () => { card.classList.add("active"); if (g) g.classList.add("active"); });
    card.addEventListener("mouseleave", () => { card.classList.remove("active"); if (g) g.classList.remove("active"); });
    card.querySelector("h2").addEventListener("click", () => focusFinding(card.dataset.finding));
  });
  fit();
})();

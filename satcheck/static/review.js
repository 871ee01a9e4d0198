// satcheck review page: plain JavaScript over the JSON API. Text from the ledger is always set with
// textContent, never as HTML. No inline script (the page's Content-Security-Policy): the settings come
// as JSON in #satcheck-config, with the per-start secret that every POST carries in X-Satcheck-Csrf.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("satcheck-config").textContent);
  // Opened with ?token=...: the server has set its cookie; keep the token out of the address bar and history.
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
  const q = (id) => document.getElementById(id);
  let patches = [], index = 0, current = null, rejecting = false, blinkTimer = null, map = null, layer = null;
  let context = null;     // rule-layer outlines around the current patch on the map
  let decided = [];       // {id, state} of decisions made on this page, latest last: what u undoes
  let confirming = null;  // a decision repeated to confirm it without chips ("accept:" or "reject:seasonal")

  const BUSY_TRIES = 75;  // about five minutes of a busy ledger (the server waits 2 s, the page 2 s), then the error

  async function api(url, options) {
    options = options || {};
    options.headers = Object.assign({"Content-Type": "application/json", "X-Satcheck-Csrf": cfg.csrf},
                                    options.headers || {});
    // The page's own policy is no-referrer, under which a browser sends "Origin: null" on a POST; the server
    // checks Origin, so the page's own requests name it (same-origin: nothing goes to another site).
    options.referrerPolicy = "same-origin";
    options.credentials = "same-origin";
    // 503: another process holds the ledger's write lock (an import) and nothing was changed, so the same
    // request is sent again after Retry-After, for as long as BUSY_TRIES allows.
    for (let attempt = 1; ; attempt++) {
      const r = await fetch(url, options);
      const body = await r.json();
      if (r.status === 503 && attempt < BUSY_TRIES) {
        const wait = Math.max(1, parseInt(r.headers.get("Retry-After"), 10) || 2);
        say("ledger busy, retrying in " + wait + " s (an import or another reviewer is writing it)");
        await new Promise((done) => setTimeout(done, wait * 1000));
        continue;
      }
      if (!r.ok) throw Object.assign(new Error(body.error || r.statusText), {status: r.status});
      if (attempt > 1) say("");
      return body;
    }
  }
  function say(text, ok) { const m = q("message"); m.textContent = text; m.className = ok ? "ok" : ""; }
  function setProgress(p) { q("progress").textContent = p.reviewed + " / " + p.total + " reviewed"; }

  function filters() {
    const p = new URLSearchParams();
    [["state", "f-state"], ["class", "f-class"], ["period", "f-period"], ["admin", "f-admin"], ["min_area", "f-area"]]
      .forEach(([k, id]) => { if (q(id).value) p.set(k, q(id).value); });
    return p.toString();
  }

  async function loadList(keepId) {
    const data = await api("api/patches?" + filters());
    patches = data.patches;
    setProgress(data.progress);
    const list = q("list");
    list.replaceChildren();
    patches.forEach((p, i) => {
      const li = document.createElement("li");
      li.dataset.id = p.patch_id;
      const st = document.createElement("span");
      st.className = "st s-" + p.state;
      st.textContent = p.state;
      li.append(document.createTextNode(p.patch_id + " · " + p["class"] + " · " + Math.round(p.area_m2) + " m² "), st);
      li.addEventListener("click", () => show(i));
      list.append(li);
    });
    if (keepId) { const i = patches.findIndex((p) => p.patch_id === keepId); if (i >= 0) index = i; }
    else if (index === 0) { const i = patches.findIndex((p) => p.state === "pending"); if (i >= 0) index = i; }
    if (patches.length) await show(Math.min(index, patches.length - 1)); else q("d-title").textContent = "no patches";
  }

  async function show(i) {
    index = i;
    const p = patches[i];
    document.querySelectorAll("#list li").forEach((li) => li.classList.toggle("current", li.dataset.id === p.patch_id));
    const li = document.querySelector('#list li[data-id="' + CSS.escape(p.patch_id) + '"]');
    if (li) li.scrollIntoView({block: "nearest"});
    current = await api("api/patches/" + encodeURIComponent(p.patch_id));
    q("d-title").textContent = current.patch_id + " · " + current["class"] + " · " + current.state;
    confirming = null;
    const chips = current.chips || {};
    ["before", "after"].forEach((w) => {
      const c = chips[w] || {ok: false, missing: false, path: null};
      const note = q("miss-" + w);
      note.textContent = c.missing ? "chip missing: " + c.path : (c.ok ? "" : "no chip for this patch");
      note.hidden = c.ok;
      note.classList.toggle("missing", c.missing);
      const src = "chips/" + encodeURIComponent(current.patch_id) + "/" + w + ".png";
      [q("chip-" + w), q("cmp-" + w)].forEach((img) => {
        img.style.visibility = c.ok ? "visible" : "hidden";
        img.onerror = () => { img.style.visibility = "hidden"; note.hidden = false; note.textContent = "chip missing"; };
        if (c.ok) img.src = src; else img.removeAttribute("src");
      });
    });
    const attrs = q("attrs");
    attrs.replaceChildren();
    Object.entries(current.attrs).forEach(([k, v]) => {
      if (v === null || v === "") return;
      const tr = document.createElement("tr"), th = document.createElement("th"), td = document.createElement("td");
      th.textContent = k; td.textContent = String(v); tr.append(th, td); attrs.append(tr);
    });
    const hist = q("history");
    hist.replaceChildren();
    current.history.forEach((e) => {
      const item = document.createElement("li");
      item.textContent = e.at.slice(0, 19).replace("T", " ") + " " + e.reviewer + ": " + e.from_state + " → " + e.to_state +
        (e.reason ? " (" + e.reason + ")" : "") + (e.note ? " — " + e.note : "");
      hist.append(item);
    });
    showOnMap(current);
    cancelReject();
  }

  let all = null;
  async function showOnMap(p) {
    if (!window.L) return;
    if (!map) {
      map = L.map("map", {attributionControl: false});
      const fc = await api("api/patches.geojson");
      all = L.geoJSON(fc, {style: {color: "#36c", weight: 1}, onEachFeature: (f, l) => l.on("click", () => {
        const i = patches.findIndex((x) => x.patch_id === f.properties.patch_id); if (i >= 0) show(i); })}).addTo(map);
    }
    if (layer) layer.remove();
    if (context) { context.remove(); context = null; }
    layer = L.geoJSON(JSON.parse(p.geometry), {style: {color: "#d00", weight: 2}}).addTo(map);
    map.fitBounds(layer.getBounds(), {maxZoom: 17, padding: [60, 60]});
    const shownId = p.patch_id;
    try {
      const fc = await api("api/patches/" + encodeURIComponent(p.patch_id) + "/layers.geojson");
      if (!current || current.patch_id !== shownId) return;
      const names = new Set();
      context = L.geoJSON(fc, {style: (f) => {
        names.add(f.properties.layer);
        return f.properties.layer === "admin" ? {color: "#333", weight: 1.5, dashArray: "5 4", fill: false}
          : {color: f.properties.colour, weight: 1, fillOpacity: 0.12};
      }, onEachFeature: (f, l) => { if (f.properties.label) l.bindTooltip(f.properties.layer + " " + f.properties.label); }
      }).addTo(map);
      context.bringToBack();
      q("legend").textContent = names.size ? "map: " + Array.from(names).join(", ") : "";
    } catch (err) { q("legend").textContent = ""; }
  }

  async function decide(decision, reason) {
    if (!current) return;
    const reviewer = q("reviewer").value.trim();
    if (!reviewer) { say("enter your name as reviewer first"); q("reviewer").focus(); return; }
    localStorage.setItem("satcheck-reviewer", reviewer);
    const key = decision + ":" + (reason || "");
    try {
      const r = await api("api/patches/" + encodeURIComponent(current.patch_id) + "/decision", {
        method: "POST",
        body: JSON.stringify({decision: decision, reason: reason || null, note: q("note").value || null,
                              reviewer: reviewer, expected: current.state, unseen: confirming === key}),
      });
      confirming = null;
      decided.push({id: current.patch_id, state: r.event.to_state});
      setProgress(r.progress);
      say(current.patch_id + ": " + r.event.from_state + " → " + r.event.to_state + "  (u undoes)", true);
      q("note").value = "";
      const id = current.patch_id;
      const next = Math.min(index + 1, patches.length - 1);
      await loadList(id);
      if (next !== index) await show(next);
    } catch (err) {
      if (err.status === 428) { confirming = key; say(err.message + " — press the same key again to confirm"); return; }
      say(err.message);
      if (err.status === 409) await loadList(current.patch_id);
    }
  }

  async function undo() {
    const reviewer = q("reviewer").value.trim();
    if (!reviewer) { say("enter your name as reviewer first"); q("reviewer").focus(); return; }
    const last = decided.length ? decided[decided.length - 1] : (current ? {id: current.patch_id, state: current.state} : null);
    if (!last) return;
    try {
      const r = await api("api/patches/" + encodeURIComponent(last.id) + "/decision", {
        method: "POST",
        body: JSON.stringify({decision: "undo", reviewer: reviewer, expected: last.state, note: q("note").value || null}),
      });
      if (decided.length && decided[decided.length - 1] === last) decided.pop();
      setProgress(r.progress);
      q("note").value = "";
      await loadList(last.id);
      say(last.id + ": " + r.event.from_state + " → " + r.event.to_state + " (undone)", true);
    } catch (err) {
      say(err.message);
      if (err.status === 409 || err.status === 400) { decided = decided.filter((d) => d.id !== last.id); }
    }
  }

  function startReject() { rejecting = true; q("reasons").hidden = false; }
  function cancelReject() { rejecting = false; q("reasons").hidden = true; }

  function toggleBlink() {
    if (blinkTimer) { clearInterval(blinkTimer); blinkTimer = null; q("cmp-clip").style.width = q("swipe").value + "%";
      q("compare-mode").textContent = "swipe"; return; }
    let on = false;
    q("compare-mode").textContent = "blink";
    blinkTimer = setInterval(() => { on = !on; q("cmp-clip").style.width = on ? "100%" : "0%"; }, 600);
  }

  q("swipe").addEventListener("input", (e) => { if (!blinkTimer) q("cmp-clip").style.width = e.target.value + "%"; });
  q("b-accept").addEventListener("click", () => decide("accept"));
  q("b-reject").addEventListener("click", startReject);
  q("b-defer").addEventListener("click", () => decide("defer"));
  q("b-undo").addEventListener("click", undo);
  document.querySelectorAll(".reason").forEach((b) => b.addEventListener("click", () => decide("reject", b.dataset.key)));
  ["f-state", "f-class", "f-period", "f-admin", "f-area"].forEach((id) => q(id).addEventListener("change", () => { index = 0; loadList().catch((err) => say(err.message)); }));
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (typing && e.key !== "Escape") return;
    if (rejecting) {
      const n = parseInt(e.key, 10);
      if (n >= 1 && n <= cfg.reasons.length) { e.preventDefault(); decide("reject", cfg.reasons[n - 1].key); }
      else if (e.key === "Escape") cancelReject();
      return;
    }
    if (e.key === "a") decide("accept");
    else if (e.key === "r") startReject();
    else if (e.key === "d") decide("defer");
    else if (e.key === "u") undo();
    else if (e.key === "j" && index < patches.length - 1) show(index + 1);
    else if (e.key === "k" && index > 0) show(index - 1);
    else if (e.key === "b") toggleBlink();
    else if (e.key === "s" && blinkTimer) toggleBlink();
    else return;
    e.preventDefault();
  });
  if (!q("reviewer").value) q("reviewer").value = localStorage.getItem("satcheck-reviewer") || "";
  q("f-state").value = "";
  loadList().catch((err) => say(err.message));
})();

// The mxdns dashboard: reads the API's JSON with the token given (kept in sessionStorage for
// this tab only) and draws it. An admin token sees everything; a tenant token its domains.
"use strict";

const $ = (s) => document.querySelector(s);
const SVG = "http://www.w3.org/2000/svg";
let token = sessionStorage.getItem("mxdns-token") || "";

async function api(path) {
  const r = await fetch(path, { headers: token ? { Authorization: "Bearer " + token } : {} });
  if (!r.ok) {
    const e = new Error(path + ": HTTP " + r.status);
    e.status = r.status;
    throw e;
  }
  return r.json();
}

function utc(unix) {
  return new Date(unix * 1000).toISOString().replace(".000Z", "Z");
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "-" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function rows(table, items, fill) {
  const body = $(table + " tbody");
  body.replaceChildren();
  for (const it of items) {
    const tr = document.createElement("tr");
    fill(tr, it);
    body.appendChild(tr);
  }
}

function showError(msg) {
  const e = $("#error");
  e.textContent = msg;
  e.hidden = !msg;
}

function zones(health) {
  const now = Date.now() / 1000;
  rows("#zones", health.zones || [], (tr, z) => {
    tr.dataset.zone = z.zone;
    cell(tr, z.zone);
    cell(tr, z.serial);
    cell(tr, z.names);
    cell(tr, z.earliestSignatureExpiry);
    const left = z.secondsToEarliestExpiry;
    cell(tr, left === null || left === undefined ? "-" : (left / 86400).toFixed(1) + " days",
      left !== null && left < 2 * 86400 ? "warn" : "");
  });
  return now;
}

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// One zone's keys on a time axis: published (pre-publication), active, retired spans; now; the
// next steps; the roll in progress and what it waits for.
function timeline(z, now) {
  const div = document.createElement("div");
  div.className = "timeline";
  div.dataset.zone = z.zone;
  const h = document.createElement("h3");
  h.textContent = z.zone + " (parent: " + z.parent + ")";
  div.appendChild(h);
  const keys = z.keys.filter((k) => !k.file_deleted);
  const times = [now];
  for (const k of keys) {
    for (const f of ["created", "published", "active", "retired", "removed"]) {
      if (k[f]) times.push(k[f].unix);
    }
  }
  for (const n of z.next) times.push(n.at.unix);
  let t0 = Math.min(...times), t1 = Math.max(...times);
  const pad = Math.max((t1 - t0) * 0.08, 3600);
  t0 -= pad;
  t1 += pad * 2;
  const W = 900, left = 150, rowH = 22, top = 20;
  const H = top + rowH * keys.length + 30;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - 10);
  const svg = el("svg", { width: W, height: H, role: "img" }, div);
  el("line", { x1: left, x2: W - 10, y1: H - 22, y2: H - 22, class: "axis" }, svg);
  for (const t of [t0 + pad, (t0 + t1) / 2, t1 - 2 * pad]) {
    const label = el("text", { x: x(t) - 40, y: H - 8 }, svg);
    label.textContent = utc(t).slice(0, 16).replace("T", " ");
  }
  keys.forEach((k, i) => {
    const y = top + i * rowH;
    const g = el("g", { class: "key", "data-tag": k.key_tag, "data-state": k.state }, svg);
    const name = el("text", { x: 4, y: y + 14 }, g);
    name.textContent = k.role.toUpperCase() + " " + k.key_tag + " " + k.state;
    const spans = [
      ["published", k.published, k.active || k.retired || k.removed],
      ["active", k.active, k.retired || k.removed],
      ["retired", k.retired, k.removed],
    ];
    for (const [cls, from, to] of spans) {
      if (!from) continue;
      const a = x(from.unix), b = to ? x(to.unix) : W - 10;
      const r = el("rect", { x: a, y: y + 3, width: Math.max(b - a, 2), height: rowH - 8, class: "seg-" + cls }, g);
      const t = el("title", {}, r);
      t.textContent = cls + " from " + from.utc + (to ? " to " + to.utc : "");
    }
    if (k.removed) {
      const m = el("text", { x: x(k.removed.unix) + 2, y: y + 14 }, g);
      m.textContent = "removed";
    }
  });
  for (const n of z.next) {
    const cx = x(n.at.unix);
    const d = el("polygon", {
      points: `${cx},${H - 30} ${cx + 5},${H - 24} ${cx},${H - 18} ${cx - 5},${H - 24}`,
      class: "next",
    }, svg);
    el("title", {}, d).textContent = n.role + ": " + n.step + " at " + n.at.utc;
  }
  el("line", { x1: x(now), x2: x(now), y1: 0, y2: H - 22, class: "now" }, svg);
  const nl = el("text", { x: x(now) + 3, y: 12 }, svg);
  nl.textContent = "now";

  const roles = {};
  for (const k of z.keys) if (!k.removed) (roles[k.role] = roles[k.role] || []).push(k);
  const info = document.createElement("div");
  for (const [role, ks] of Object.entries(roles)) {
    if (ks.length > 1) {
      const p = document.createElement("p");
      p.className = "roll";
      const next = z.next.find((n) => n.role === role);
      p.textContent = role.toUpperCase() + " roll in progress (" + ks.map((k) => k.key_tag + " " + k.state).join(", ") + ")" +
        (next ? "; waits for: " + next.step + " at " + next.at.utc : "");
      info.appendChild(p);
    }
  }
  if (z.waiting_for_parent) {
    const w = z.waiting_for_parent;
    const p = document.createElement("p");
    p.className = "roll warn waiting";
    p.textContent = "Waiting for the parent's DS of key " + w.key_tag + ": " + (w.ds || "") + " — " + w.action;
    info.appendChild(p);
  }
  const ul = document.createElement("ul");
  ul.className = "next-steps";
  for (const n of z.next) {
    const li = document.createElement("li");
    li.textContent = "next: " + n.role + " " + n.step + " at " + n.at.utc;
    ul.appendChild(li);
  }
  info.appendChild(ul);
  div.appendChild(info);
  return div;
}

async function partitions(zonesList) {
  const apex = zonesList.map((z) => z.zone).sort((a, b) => a.length - b.length)[0];
  const items = [];
  for (const z of zonesList) {
    if (z.zone === apex) continue;
    const label = z.zone.slice(0, z.zone.length - apex.length - 1);
    const p = await api("/v1/partitions/" + encodeURIComponent(label));
    const certs = p.tlsa.length ? p.tlsa : [null];
    for (const c of certs) items.push({ p, c });
  }
  const now = Date.now() / 1000;
  rows("#partitions", items, (tr, { p, c }) => {
    tr.dataset.partition = p.partition;
    cell(tr, p.partition);
    cell(tr, p.addresses.join(" "));
    cell(tr, c && c.role);
    cell(tr, c && c.subject);
    cell(tr, c && c.notAfterUtc, c && c.notAfter - now < 30 * 86400 ? "warn" : "");
    cell(tr, c && c.record);
  });
}

async function domains() {
  const q = $("#search").value;
  const d = await api("/v1/domains?limit=1000&search=" + encodeURIComponent(q));
  const counts = {};
  for (const x of d.domains) counts[x.state] = (counts[x.state] || 0) + 1;
  $("#domain-counts").textContent = Object.entries(counts).map(([k, v]) => k + ": " + v).join(", ");
  rows("#domains", d.domains, (tr, x) => {
    tr.dataset.domain = x.domain;
    cell(tr, x.domain);
    cell(tr, x.tenantId);
    cell(tr, x.partition);
    cell(tr, x.state);
  });
  return d;
}

async function changes() {
  // the trail is oldest first: page to its end, show the last 30, newest first
  let after = 0, last = [];
  for (let i = 0; i < 100; i++) {
    const page = await api("/v1/audit?limit=1000&after=" + after);
    if (page.entries.length) last = last.concat(page.entries).slice(-30);
    if (!page.next || page.entries.length === 0) break;
    after = page.next;
  }
  rows("#changes", last.reverse(), (tr, e) => {
    cell(tr, utc(e.at));
    cell(tr, e.actor + (e.tenantId ? " " + e.tenantId : ""));
    cell(tr, e.action);
    cell(tr, e.target);
  });
}

async function load() {
  showError("");
  try {
    const now = zones(await api("/v1/health").catch((e) => {
      if (e.status === 503) return fetch("/v1/health").then((r) => r.json());
      throw e;
    }));
    if (!token) {
      $("#who").textContent = "give a token to see keys and domains";
      return;
    }
    // who the token is (the domains list says), so that nothing is asked that it may not see
    const admin = (await domains()).caller === "admin";
    document.querySelectorAll(".admin").forEach((s) => (s.hidden = !admin));
    $("#who").textContent = admin ? "admin" : "tenant";
    if (admin) {
      const k = await api("/v1/keys");
      const box = $("#timelines");
      box.replaceChildren();
      const legend = document.createElement("p");
      legend.className = "legend";
      legend.innerHTML = '<span class="l-published">published</span><span class="l-active">active</span><span class="l-retired">retired</span> red line: now; orange: next steps';
      box.appendChild(legend);
      for (const z of k.zones) box.appendChild(timeline(z, now));
    }
    if (admin) {
      const h = await fetch("/v1/health").then((r) => r.json());
      await partitions(h.zones);
      await changes();
    }
    document.body.dataset.loaded = admin ? "admin" : "tenant";
  } catch (e) {
    showError(e.message);
    document.body.dataset.loaded = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  // a token in the fragment (#token=...) is taken and removed from the address
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    token = decodeURIComponent(m[1]);
    sessionStorage.setItem("mxdns-token", token);
    history.replaceState(null, "", location.pathname);
  }
  $("#login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("#token").value.trim();
    sessionStorage.setItem("mxdns-token", token);
    load();
  });
  let timer;
  $("#search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => domains().catch((e) => showError(e.message)), 200);
  });
  load();
});

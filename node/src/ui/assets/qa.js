// Quality control: recent finished contacts (from the contact ledger) with their recordings,
// a form to score one on the site's checklist, and today's per-agent report with the reviews.
// Plain DOM, no inline code (the Content-Security-Policy forbids it).
"use strict";

const qa = {
  checklist: [],
  contacts: [],
  selected: null,
  idempotencyKey: null,
};

// A recording reference opens as a link only when it is an http(s) URL; anything else is an
// opaque id for the recording system, shown as text.
function recording(reference) {
  if (!reference) return "–";
  if (/^https?:\/\//i.test(reference)) {
    return cg.h("a", { href: reference, target: "_blank", rel: "noopener noreferrer" }, "listen");
  }
  return cg.h("code", {}, reference);
}

function score(value) {
  return value === null || value === undefined ? "–" : value.toFixed(1) + " %";
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function newKey() {
  return "qa-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
}

function renderContacts() {
  cg.put("contacts", qa.contacts.map((contact) =>
    cg.h("tr", { "data-contact": contact.contact, class: qa.selected === contact.contact ? "selected" : "" },
      cg.h("td", {}, String(contact.contact)),
      cg.h("td", {}, time(contact.ended_at_ms)),
      cg.h("td", {}, contact.agent),
      cg.h("td", {}, contact.skill),
      cg.h("td", {}, recording(contact.recording_ref)),
      cg.h("td", { "data-testid": "reviews" }, String(contact.reviews)),
      cg.h("td", {}, score(contact.score_percent_mean)),
      cg.h("td", {}, cg.h("button", { type: "button", class: "score", onclick: () => select(contact) }, "Score")))));
  document.getElementById("empty").hidden = qa.contacts.length > 0;
}

function select(contact) {
  qa.selected = contact.contact;
  qa.idempotencyKey = newKey();
  cg.text("review-contact", "contact " + contact.contact + " — " + contact.agent);
  cg.put("review-recording", contact.recording_ref ? ["Recording: ", recording(contact.recording_ref)] : ["No recording reference"]);
  cg.put("review-items", qa.checklist.map((item) => {
    const id = "score-" + item.name;
    return cg.h("div", { class: "row" },
      cg.h("label", { for: id }, item.name.replace(/_/g, " ") + " (0–" + item.max_points + ", weight " + item.weight + ")"),
      cg.h("input", { id, type: "number", min: 0, max: item.max_points, step: 1, required: true, value: item.max_points, "data-item": item.name }));
  }));
  document.getElementById("review-comment").value = "";
  document.getElementById("review-form").hidden = false;
  cg.text("review-result", "");
  renderContacts();
  const first = document.querySelector("#review-items input");
  if (first) first.focus();
}

async function submitReview(event) {
  event.preventDefault();
  if (qa.selected === null) return;
  const scores = {};
  for (const input of document.querySelectorAll("#review-items input")) {
    scores[input.dataset.item] = Number(input.value);
  }
  const body = { scores, comment: document.getElementById("review-comment").value };
  try {
    const headers = { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": cg.session.csrf, "Idempotency-Key": qa.idempotencyKey };
    const response = await fetch("/api/v1/contacts/" + qa.selected + "/reviews", {
      method: "POST", headers, credentials: "same-origin", body: JSON.stringify(body),
    });
    const value = await response.json().catch(() => null);
    if (!response.ok) throw new Error((value && value.detail) || response.status + " " + response.statusText);
    // A new key for the next save: a second save is a new review (it replaces this one).
    qa.idempotencyKey = newKey();
    cg.text("review-result", (value.replaced ? "replaced" : "saved") + ": review " + value.review);
    cg.text("error", "");
    await load();
  } catch (error) {
    cg.text("review-result", "");
    cg.text("error", error.message);
  }
}

function renderAgents(report) {
  const rows = (report.agents || []).filter((row) => row.login);
  cg.put("agents", rows.map((row) =>
    cg.h("tr", { "data-agent": row.login },
      cg.h("th", { scope: "row" }, row.login),
      cg.h("td", {}, row.counters ? String(row.counters.handled) : "–"),
      cg.h("td", {}, cg.duration(row.aht_ms)),
      cg.h("td", { "data-testid": "agent-reviews" }, String(row.reviews || 0)),
      cg.h("td", { "data-testid": "agent-score" }, score(row.review_score_percent_mean)))));
}

async function load() {
  try {
    const [finished, report] = await Promise.all([
      cg.api("GET", "/quality/contacts?limit=50"),
      cg.api("GET", "/reports/agents"),
    ]);
    qa.checklist = finished.checklist || [];
    qa.contacts = finished.contacts || [];
    renderContacts();
    renderAgents(report);
    cg.text("error", "");
  } catch (error) {
    cg.text("error", error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("review-form").addEventListener("submit", submitReview);
  document.getElementById("reload").addEventListener("click", load);
  cg.boot(["supervisor"], () => load());
});

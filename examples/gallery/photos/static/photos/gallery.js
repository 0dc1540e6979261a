// Live status badges for the gallery page.
//
// The page polls /api/photos/?ids=... (one ledger query for the whole page,
// via storage.statuses(names)) and updates each card in place: its badge,
// where its URL points, its picture, and its "Transfer now" / "Retry" button.
"use strict";

(function () {
  const grid = document.querySelector("[data-gallery]");
  if (!grid) return;
  const announcer = document.querySelector("[data-announcer]");
  const cards = new Map(
    [...grid.querySelectorAll("[data-photo-id]")].map((card) => [card.dataset.photoId, card])
  );
  const FAST = 700; // ms between polls while something is on its way
  const SLOW = 5000; // ms once every photo has settled
  const MOVING = new Set(["queued", "transferring"]);
  let timer = null;

  // "Settled" photos change only when someone acts (or the worker retries).
  const settled = (photo) => !MOVING.has(photo.status) && !MOVING.has(photo.thumbnail_status);
  const withoutQuery = (url) => url.split("?")[0];
  const field = (card, name) => card.querySelector(`[data-field="${name}"]`);

  function render(photo) {
    const card = cards.get(String(photo.id));
    if (!card) return;
    const status = photo.status || "unknown";
    if (card.dataset.status !== status && announcer) {
      announcer.textContent = `${photo.title}: ${status}`;
    }
    card.dataset.status = status;
    const badge = field(card, "status");
    badge.className = `badge badge-${status}`;
    badge.textContent = status;
    field(card, "where").textContent = photo.where;
    const link = field(card, "url");
    link.href = photo.url;
    link.textContent = photo.url_label;
    field(card, "link").href = photo.url;
    // A signed S3 URL changes on every request; reload the picture only when
    // it moved (local -> remote, or original -> thumbnail).
    const image = field(card, "image");
    if (withoutQuery(image.src) !== withoutQuery(photo.image_url)) image.src = photo.image_url;
    const error = field(card, "error");
    error.textContent = photo.error;
    error.title = photo.error;
    error.hidden = !photo.error;
    const button = field(card, "action");
    button.closest("form").hidden = !photo.action;
    button.textContent = photo.action === "retry" ? "Retry" : "Transfer now";
  }

  async function poll() {
    clearTimeout(timer);
    let delay = SLOW;
    try {
      const url = `${grid.dataset.statesUrl}?ids=${[...cards.keys()].join(",")}`;
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const { photos } = await response.json();
      photos.forEach(render);
      if (!photos.every(settled)) delay = FAST;
    } catch (error) {
      console.warn("Could not refresh the statuses:", error);
    }
    timer = setTimeout(poll, delay);
  }

  // The buttons work without JavaScript (a POST and a redirect); with it,
  // they update their card in place and speed the polling up again.
  grid.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-transfer]");
    if (!form) return;
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      render((await response.json()).photo);
    } catch (error) {
      form.submit(); // fall back to the plain form post
      return;
    } finally {
      button.disabled = false;
    }
    poll();
  });

  if (cards.size) poll();
})();

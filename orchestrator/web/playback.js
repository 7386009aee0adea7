// Rewind player: playback controls for the chunk on screen (pause / play, scrub, full screen).
// The player (player.js) double-buffers two <video> elements and swaps which one is visible
// (class "active"); these controls always act on the visible one, so they need no state of the
// player's. Space toggles pause (outside text fields); F toggles full screen.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const stage = $("stage");
  const button = $("play-pause");
  const scrub = $("scrub");
  const time = $("play-time");
  const full = $("fullscreen");
  const screen = $("screen") || stage; // the video and these controls: full screen together
  if (!stage || !button || !scrub) return;

  const active = () => stage.querySelector("video.chunk-video.active");
  let scrubbing = false;

  function render() {
    const v = active();
    const paused = !v || v.paused;
    button.dataset.state = paused ? "paused" : "playing";
    button.textContent = paused ? "▶" : "❚❚";
    button.setAttribute("aria-label", paused ? "Play (space)" : "Pause (space)");
    const duration = v && Number.isFinite(v.duration) ? v.duration : 0;
    const now = v ? v.currentTime : 0;
    if (!scrubbing) scrub.value = String(duration ? Math.round((now / duration) * 1000) : 0);
    time.textContent = `${now.toFixed(1)} / ${duration.toFixed(1)} s`;
    stage.dataset.paused = String(paused);
  }

  function toggle() {
    const v = active();
    if (!v) return;
    if (v.paused) v.play().catch(() => render()); else v.pause();
    render();
  }

  button.addEventListener("click", toggle);
  scrub.addEventListener("input", () => {
    const v = active();
    scrubbing = true;
    if (v && Number.isFinite(v.duration)) v.currentTime = (Number(scrub.value) / 1000) * v.duration;
    render();
  });
  for (const type of ["change", "pointerup", "blur"]) {
    scrub.addEventListener(type, () => { scrubbing = false; render(); });
  }

  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (screen.requestFullscreen) screen.requestFullscreen().catch(() => {});
  }
  full.addEventListener("click", toggleFullscreen);
  document.addEventListener("fullscreenchange", () => {
    const on = document.fullscreenElement === screen;
    full.setAttribute("aria-pressed", String(on));
    full.textContent = on ? "Exit full screen" : "Full screen";
  });

  for (const v of stage.querySelectorAll("video.chunk-video")) {
    for (const type of ["play", "pause", "timeupdate", "loadedmetadata", "ended", "seeked"]) {
      v.addEventListener(type, render);
    }
  }
  // The player swaps the visible video by class: follow it.
  new MutationObserver(render).observe(stage, { subtree: true, attributeFilter: ["class"] });

  document.addEventListener("keydown", (e) => {
    const tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || tag === "BUTTON") return;
    if (e.ctrlKey || e.metaKey || e.altKey || stage.closest("[hidden]")) return;
    if (e.code === "Space") { e.preventDefault(); toggle(); }
    else if (e.code === "KeyF") { e.preventDefault(); toggleFullscreen(); }
  });
  render();
})();

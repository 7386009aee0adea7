// Rewind player: upload a photo, watch chunks back to back, steer with W/A/S/D + camera.
// Plain browser JavaScript, no build step. Talks only to this service's API:
//   POST /api/memories?inline=false            start a memory (root chunk, session)
//   POST /api/memories/{id}/sessions           a new walk through an existing memory (?memory=)
//   POST /api/memories/{id}/chunks?inline=false the next chunk (hit / inflight / miss, wait_ms)
//   GET  /api/memories/{id}                    the chunk tree (structure + status)
//   GET  /api/memories/{id}/events             SSE: snapshot, speculation_*, chunk_ready/served
//   GET  /api/sessions/{id}/journey.mp4        the walk as one MP4
"use strict";

(() => {
  const MOVES = ["w", "s", "a", "d"];
  const CAMERAS = ["up", "down", "left", "right"];
  // ACTION_NAMES order (orchestrator/core/poses.py): singles first, then move+camera pairs.
  const ACTION_ORDER = [...MOVES, ...CAMERAS];
  for (const m of MOVES) for (const c of CAMERAS) ACTION_ORDER.push(`${m}+${c}`);
  const KEY_TO_INPUT = {
    KeyW: ["move", "w"], KeyA: ["move", "a"], KeyS: ["move", "s"], KeyD: ["move", "d"],
    ArrowUp: ["camera", "up"], ArrowDown: ["camera", "down"],
    ArrowLeft: ["camera", "left"], ArrowRight: ["camera", "right"],
  };
  const ARROWS = { up: "↑", down: "↓", left: "←", right: "→" };
  const OUTCOME_LABEL = { hit: "hit", inflight: "in-flight", miss: "miss" };
  const LOADING_DELAY_MS = 150; // a hit answers at once: no flash of the loading overlay

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("service-status"), error: $("error"), errorTitle: $("error-title"),
    errorDetail: $("error-detail"), errorClose: $("error-close"),
    uploadView: $("upload-view"), form: $("upload-form"), drop: $("drop-zone"),
    input: $("photo-input"), preview: $("photo-preview"), dropText: $("drop-text"),
    prompt: $("prompt-input"), start: $("start-button"),
    playerView: $("player-view"), stage: $("stage"), videos: [$("video-a"), $("video-b")],
    loading: $("loading"), loadingText: $("loading-text"), loadingBar: $("loading-progress"),
    loadingFill: $("loading-fill"), loadingDetail: $("loading-detail"), queueNote: $("queue-note"),
    badge: $("outcome-badge"), lastWait: $("last-wait"), lastAction: $("last-action"),
    joystick: $("joystick"), knob: $("joy-knob"), combine: $("combine"),
    pending: $("pending-action"), tree: $("tree-map"), treeSummary: $("tree-summary"),
    live: $("live-dot"), log: $("step-log"), scene: $("scene-text"),
    journey: $("journey-button"), journeyStatus: $("journey-status"),
    sound: $("sound-button"), audio: $("soundscape"), newButton: $("new-button"),
    walkStats: $("walk-stats"),
  };

  const state = {
    photo: null,          // data: URL of the chosen photo
    memoryId: null,
    sessionId: null,
    cursor: null,         // the latest chunk: parent of the next request
    shown: null,          // chunk on screen
    front: 0,             // which <video> is visible
    backChunk: null,      // chunk preloaded in the hidden <video>
    queue: [],            // chunks waiting to play after the one on screen
    busy: false,
    nodes: new Map(),     // chunk id -> {id, parent, action, pose, index, state, kind, startedAt}
    steps: 0,
    estimateMs: null,     // expected generation time (from chunk_ready and misses)
    events: null,
    combine: false,
    pendingMove: null,
    pendingCamera: null,
    held: new Set(),
    chord: { move: null, camera: null },
    refetchTimer: null,
    treeVersion: 0,
    policy: null,         // the session's speculation policy ("none": nothing is prepared)
  };

  // ---------------------------------------------------------------- API and errors

  class ApiError extends Error {
    constructor(code, detail, field, status) {
      super(detail);
      this.code = code;
      this.detail = detail;
      this.field = field;
      this.status = status;
    }
  }

  async function api(method, path, body) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: window.rewindAuth.headers(
          body === undefined ? {} : { "content-type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError("network", `the service could not be reached (${err.message}).`, null, 0);
    }
    if (!res.ok) throw await errorFrom(res, method, path);
    return res.json();
  }

  async function errorFrom(res, method, path) {
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (data && data.detail) {
      const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
      return new ApiError(data.error || `http_${res.status}`, detail, data.field || null, res.status);
    }
    return new ApiError(`http_${res.status}`,
      `${method} ${path} answered ${res.status} ${res.statusText}.`, null, res.status);
  }

  function showError(err, context) {
    el.errorTitle.textContent = context;
    if (err instanceof ApiError) {
      const field = err.field ? ` (field: ${err.field})` : "";
      const code = err.status ? ` [${err.status} ${err.code}]` : "";
      el.errorDetail.textContent = `${capitalise(err.detail)}${field}${code}`;
    } else {
      el.errorDetail.textContent = String(err && err.message ? err.message : err);
    }
    el.error.hidden = false;
  }

  function clearError() { el.error.hidden = true; }

  const capitalise = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

  function fmtWait(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
  }

  function actionLabel(action) {
    if (!action) return "?";
    return action.split("+").map((p) => ARROWS[p] || p.toUpperCase()).join(" + ");
  }

  // ---------------------------------------------------------------- upload

  function choose(file) {
    if (!file) return;
    if (!file.type.startsWith("image/")) {
      showError(new Error(`"${file.name}" is not an image (${file.type || "unknown type"}).`),
        "That file cannot be used.");
      return;
    }
    clearError();
    const reader = new FileReader();
    reader.onload = () => {
      state.photo = reader.result;
      el.preview.src = state.photo;
      el.preview.alt = `Chosen photo: ${file.name}`;
      el.preview.hidden = false;
      el.dropText.innerHTML = `<strong>${escapeHtml(file.name)}</strong>` +
        `<small>${(file.size / 1024 / 1024).toFixed(1)} MB · click to change</small>`;
      el.start.disabled = false;
    };
    reader.onerror = () => showError(reader.error, "The photo could not be read.");
    reader.readAsDataURL(file);
  }

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  el.input.addEventListener("change", () => choose(el.input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    el.drop.addEventListener(type, (e) => { e.preventDefault(); el.drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    el.drop.addEventListener(type, () => el.drop.classList.remove("over"));
  }
  el.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    choose(e.dataTransfer && e.dataTransfer.files[0]);
  });

  el.form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!state.photo || state.busy) return;
    clearError();
    const prompt = el.prompt.value.trim();
    enterPlayer();
    el.videos[0].poster = state.photo;
    state.busy = true;
    setControls(false);
    startLoading("Generating the first chunk from your photo…", null);
    try {
      const body = await api("POST", "/api/memories?inline=false", {
        image_base64: state.photo,
        prompt: prompt || null,
      });
      history.replaceState(null, "", `?memory=${body.memory_id}`);
      await beginWalk(body.memory_id, body.session_id, body.chunk, {
        scene: body.scene, audioUrl: body.audio_url, policy: body.policy,
      });
    } catch (err) {
      showError(err, "Your photo could not be turned into a memory.");
      leavePlayer();
    } finally {
      state.busy = false;
      stopLoading();
      setControls(true);
    }
  });

  // A new walk through an existing memory: /?memory=<id> (the URL after an upload).
  async function resume(memoryId) {
    enterPlayer();
    state.busy = true;
    setControls(false);
    startLoading("Opening the memory…", null);
    try {
      const session = await api("POST", `/api/memories/${memoryId}/sessions`);
      const memory = await api("GET", `/api/memories/${memoryId}`);
      const root = memory.chunks.find((c) => c.chunk_id === session.cursor_chunk_id);
      if (!root || !root.video_url) throw new Error("the memory's first chunk is not ready yet.");
      el.videos[0].poster = memory.original_image_url;
      await beginWalk(memoryId, session.session_id, {
        ...root, outcome: null, wait_ms: null,
      }, { scene: memory.scene, audioUrl: memory.audio_url, tree: memory, policy: session.policy });
    } catch (err) {
      showError(err, "That memory could not be opened.");
      history.replaceState(null, "", "/");
      leavePlayer();
    } finally {
      state.busy = false;
      stopLoading();
      setControls(true);
    }
  }

  function enterPlayer() {
    el.uploadView.hidden = true;
    el.playerView.hidden = false;
  }

  function leavePlayer() {
    if (state.events) state.events.close();
    state.events = null;
    for (const v of el.videos) { v.pause(); v.removeAttribute("src"); v.load(); }
    el.audio.pause();
    Object.assign(state, {
      memoryId: null, sessionId: null, cursor: null, shown: null, backChunk: null, queue: [],
      steps: 0, pendingMove: null, pendingCamera: null,
    });
    state.nodes.clear();
    el.log.textContent = "";
    el.badge.hidden = true;
    el.lastWait.textContent = "";
    el.lastAction.textContent = "";
    el.journeyStatus.textContent = "";
    el.walkStats.textContent = "";
    el.queueNote.hidden = true;
    renderPending();
    el.playerView.hidden = true;
    el.uploadView.hidden = false;
  }

  el.newButton.addEventListener("click", () => {
    history.replaceState(null, "", "/");
    clearError();
    leavePlayer();
  });

  async function beginWalk(memoryId, sessionId, chunk, extra) {
    state.memoryId = memoryId;
    state.sessionId = sessionId;
    state.cursor = chunk.chunk_id;
    state.policy = extra.policy || null;
    upsertNode({
      id: chunk.chunk_id, parent: chunk.parent_chunk_id || null, action: chunk.action,
      pose: chunk.pose, index: chunk.chunk_index, state: "ready", kind: "served",
    });
    el.stage.dataset.memoryId = memoryId;
    el.stage.dataset.sessionId = sessionId;
    showScene(extra.scene);
    setAudio(extra.audioUrl);
    if (chunk.outcome === "miss") learnEstimate(chunk.wait_ms);
    logStep(chunk.action || chunk.pose, chunk, true);
    play(chunk);
    openEvents();
    if (extra.tree) applyTree(extra.tree); else refetchTree(0);
    renderTree();
    refreshWalk();
  }

  // This walk so far (GET /api/sessions/{id}): hit rate after the root chunk, GPU time, USD.
  async function refreshWalk() {
    const sessionId = state.sessionId;
    if (!sessionId) return;
    try {
      const w = await api("GET", `/api/sessions/${sessionId}`);
      if (sessionId !== state.sessionId) return;
      el.walkStats.dataset.requests = String(w.requests);
      el.walkStats.dataset.hits = String(w.hits);
      el.walkStats.dataset.gpuSeconds = String(w.gpu_seconds);
      const rate = w.hit_rate === null ? "no steps yet"
        : `<strong>${Math.round(w.hit_rate * 100)}% hits</strong> (${w.hits} of ${w.requests} steps` +
          `${w.inflight ? `, ${w.inflight} in-flight` : ""})`;
      el.walkStats.innerHTML = `This walk: ${rate} · GPU <strong>${w.gpu_seconds.toFixed(1)} s</strong>` +
        ` ($${w.usd.toFixed(w.usd < 1 ? 4 : 2)}), ${w.speculative_jobs} of ${w.jobs} jobs speculative`;
    } catch (err) {
      el.walkStats.textContent = `This walk: statistics unavailable (${err.detail || err.message}).`;
    }
  }

  function showScene(scene) {
    if (!scene) {
      el.scene.textContent = "No scene description for this memory.";
      return;
    }
    el.scene.textContent = scene.mood ? `${scene.description} — ${scene.mood}` : scene.description;
  }

  function setAudio(url) {
    if (!url) { el.sound.hidden = true; el.audio.removeAttribute("src"); return; }
    el.audio.src = url;
    el.sound.hidden = false;
    setSound(true);
  }

  function setSound(on) {
    el.sound.setAttribute("aria-pressed", String(on));
    el.sound.textContent = on ? "Sound on" : "Sound off";
    if (on) el.audio.play().catch(() => setSound(false)); else el.audio.pause();
  }

  el.sound.addEventListener("click", () =>
    setSound(el.sound.getAttribute("aria-pressed") !== "true"));

  // ---------------------------------------------------------------- playback (double-buffered)

  function play(chunk) {
    const front = el.videos[state.front];
    if (!state.shown) { load(front, chunk); show(state.front, chunk); return; }
    if (front.ended || front.error) { swapTo(chunk); return; }
    state.queue.push(chunk);
    preloadNext();
    renderQueue();
  }

  function load(video, chunk) {
    video.src = chunk.video_url;
    video.dataset.chunkId = chunk.chunk_id;
    video.load();
  }

  function preloadNext() {
    const next = state.queue[0];
    const back = el.videos[1 - state.front];
    // Never replace what is still on screen (the previous chunk, until the new one has data).
    if (!next || state.backChunk === next || back.classList.contains("active")) return;
    load(back, next);
    state.backChunk = next;
  }

  function swapTo(chunk) {
    const back = 1 - state.front;
    if (state.backChunk !== chunk) load(el.videos[back], chunk);
    state.backChunk = null;
    show(back, chunk);
  }

  function show(index, chunk) {
    const video = el.videos[index];
    const previous = el.videos[1 - index];
    const reveal = () => {
      video.classList.add("active");
      video.removeAttribute("aria-hidden");
      video.setAttribute("aria-label", `Chunk ${chunk.chunk_index}: ${actionLabel(chunk.action)}`);
      if (previous !== video) {
        previous.classList.remove("active");
        previous.setAttribute("aria-hidden", "true");
        previous.pause();
      }
      preloadNext();
    };
    state.front = index;
    state.shown = chunk;
    el.stage.dataset.chunkId = chunk.chunk_id;
    const start = () => {
      reveal();
      video.play().catch((err) => {
        if (err.name !== "AbortError") showError(err, "The video could not play.");
      });
    };
    if (video.readyState >= 2) start();
    else video.addEventListener("loadeddata", start, { once: true });
    renderQueue();
  }

  for (const video of el.videos) {
    video.addEventListener("ended", () => {
      if (video !== el.videos[state.front]) return;
      renderTree();
      const next = state.queue.shift();
      if (next) swapTo(next);
      preloadNext();
      renderQueue();
    });
    video.addEventListener("error", () => {
      if (!video.getAttribute("src")) return;
      const code = video.error ? video.error.code : "?";
      showError(new Error(`the browser could not load ${video.getAttribute("src")} (media error ${code}).`),
        "A chunk's video could not be played.");
    });
  }

  function renderQueue() {
    const n = state.queue.length;
    el.queueNote.hidden = n === 0;
    el.queueNote.textContent = n === 1 ? "Next chunk ready — plays after this one"
      : `${n} chunks ready — they play after this one`;
  }

  // ---------------------------------------------------------------- loading state

  let loadingTimer = null;
  let loadingShowTimer = null;

  function startLoading(text, prediction) {
    const t0 = performance.now();
    el.loadingText.textContent = text;
    el.loadingDetail.textContent = "";
    el.loadingFill.style.width = "0%";
    el.loadingBar.removeAttribute("aria-valuenow");
    clearTimeout(loadingShowTimer);
    loadingShowTimer = setTimeout(() => { el.loading.hidden = false; }, prediction ? LOADING_DELAY_MS : 0);
    el.stage.setAttribute("aria-busy", "true");
    const tick = () => {
      const now = performance.now();
      const elapsed = now - t0;
      let started = t0;
      let note = "";
      if (prediction && prediction.state === "running" && prediction.startedAt) {
        started = t0 - Math.max(0, Date.now() - prediction.startedAt);
        note = "already being generated";
      } else if (prediction && prediction.state === "ready") {
        note = "ready — loading";
      } else if (prediction) {
        note = "not generated yet — starting on a GPU";
      }
      const estimate = state.estimateMs;
      const parts = [`${fmtWait(elapsed)} elapsed`];
      if (estimate) {
        const fraction = Math.min(0.97, (now - started) / estimate);
        el.loadingBar.classList.remove("indeterminate");
        el.loadingFill.style.width = `${(fraction * 100).toFixed(1)}%`;
        el.loadingBar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
        parts.push(`about ${fmtWait(Math.max(0, estimate - (now - started)))} to go`);
      } else {
        el.loadingBar.classList.add("indeterminate");
      }
      if (note) parts.unshift(note);
      el.loadingDetail.textContent = parts.join(" · ");
    };
    tick();
    clearInterval(loadingTimer);
    loadingTimer = setInterval(tick, 100);
  }

  function stopLoading() {
    clearInterval(loadingTimer);
    clearTimeout(loadingShowTimer);
    el.loading.hidden = true;
    el.stage.removeAttribute("aria-busy");
  }

  function learnEstimate(ms) {
    if (!(ms > 0)) return;
    state.estimateMs = state.estimateMs ? 0.7 * state.estimateMs + 0.3 * ms : ms;
  }

  // ---------------------------------------------------------------- steering

  function setControls(enabled) {
    for (const b of document.querySelectorAll("[data-move], [data-camera]")) b.disabled = !enabled;
    el.joystick.classList.toggle("disabled", !enabled);
    el.journey.disabled = !enabled && !state.sessionId;
  }

  function input(kind, value) {
    if (!state.combine) { step(value); return; }
    if (kind === "move") state.pendingMove = value; else state.pendingCamera = value;
    if (state.pendingMove && state.pendingCamera) {
      const action = `${state.pendingMove}+${state.pendingCamera}`;
      state.pendingMove = state.pendingCamera = null;
      renderPending();
      step(action);
    } else {
      renderPending();
    }
  }

  function renderPending() {
    if (state.pendingMove || state.pendingCamera) {
      const m = state.pendingMove ? state.pendingMove.toUpperCase() : "…";
      const c = state.pendingCamera ? ARROWS[state.pendingCamera] : "…";
      const need = state.pendingMove ? "a camera direction" : "a move key";
      el.pending.textContent = `${m} + ${c} — pick ${need} (Esc cancels)`;
    } else {
      el.pending.textContent = "";
    }
  }

  el.combine.addEventListener("click", () => {
    state.combine = !state.combine;
    el.combine.setAttribute("aria-pressed", String(state.combine));
    state.pendingMove = state.pendingCamera = null;
    renderPending();
  });

  for (const b of document.querySelectorAll("[data-move]")) {
    b.addEventListener("click", () => input("move", b.dataset.move));
  }
  for (const b of document.querySelectorAll("[data-camera]")) {
    b.addEventListener("click", () => input("camera", b.dataset.camera));
  }

  // Keyboard: a chord is every key held together; it fires when the last key is released,
  // so W held + → gives "w+right" and W alone gives "w".
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      state.pendingMove = state.pendingCamera = null;
      renderPending();
      return;
    }
    const mapped = KEY_TO_INPUT[e.code];
    if (!mapped || e.ctrlKey || e.metaKey || e.altKey || el.playerView.hidden) return;
    const tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    e.preventDefault();
    if (e.repeat) return;
    state.held.add(e.code);
    state.chord[mapped[0]] = mapped[1];
    highlight(mapped[1], true);
  });

  document.addEventListener("keyup", (e) => {
    const mapped = KEY_TO_INPUT[e.code];
    if (!mapped || !state.held.has(e.code)) return;
    e.preventDefault();
    state.held.delete(e.code);
    highlight(mapped[1], false);
    if (state.held.size > 0) return;
    const { move, camera } = state.chord;
    state.chord = { move: null, camera: null };
    if (move && camera) step(`${move}+${camera}`);
    else if (state.combine) input(move ? "move" : "camera", move || camera);
    else step(move || camera);
  });

  window.addEventListener("blur", () => {
    state.held.clear();
    state.chord = { move: null, camera: null };
    for (const b of document.querySelectorAll(".pressed")) b.classList.remove("pressed");
  });

  function highlight(value, on) {
    const sel = MOVES.includes(value) ? `[data-move="${value}"]` : `[data-camera="${value}"]`;
    const button = document.querySelector(sel);
    if (button) button.classList.toggle("pressed", on);
  }

  // Joystick: drag the knob towards a direction and let go (or click an arrow).
  let drag = null;
  el.joystick.addEventListener("pointerdown", (e) => {
    if (e.target.closest("button") || el.joystick.classList.contains("disabled")) return;
    const rect = el.joystick.getBoundingClientRect();
    drag = { cx: rect.left + rect.width / 2, cy: rect.top + rect.height / 2, r: rect.width / 2 - 18, dir: null };
    el.joystick.setPointerCapture(e.pointerId);
    moveKnob(e);
  });
  el.joystick.addEventListener("pointermove", (e) => { if (drag) moveKnob(e); });
  const endDrag = (fire) => {
    if (!drag) return;
    const dir = drag.dir;
    drag = null;
    el.knob.style.transform = "";
    for (const c of CAMERAS) highlight(c, false);
    if (fire && dir) input("camera", dir);
  };
  el.joystick.addEventListener("pointerup", () => endDrag(true));
  el.joystick.addEventListener("pointercancel", () => endDrag(false));

  function moveKnob(e) {
    let dx = e.clientX - drag.cx;
    let dy = e.clientY - drag.cy;
    const dist = Math.hypot(dx, dy);
    if (dist > drag.r) { dx *= drag.r / dist; dy *= drag.r / dist; }
    el.knob.style.transform = `translate(${dx}px, ${dy}px)`;
    let dir = null;
    if (dist > drag.r * 0.35) {
      dir = Math.abs(dx) > Math.abs(dy) ? (dx > 0 ? "right" : "left") : (dy > 0 ? "down" : "up");
    }
    if (dir !== drag.dir) {
      for (const c of CAMERAS) highlight(c, c === dir);
      drag.dir = dir;
    }
  }

  // ---------------------------------------------------------------- one step

  async function step(action) {
    if (!state.cursor || !state.memoryId) return;
    if (state.busy) {
      el.pending.textContent = `Still waiting for the previous step; ${actionLabel(action)} ignored.`;
      return;
    }
    clearError();
    state.busy = true;
    setControls(false);
    const parent = state.cursor;
    const memoryId = state.memoryId;
    const prediction = childFor(parent, action);
    setTimeout(refreshStatus, 300); // the GPU card shows the demand job starting
    startLoading(`Generating ${actionLabel(action)}…`, prediction || { state: "absent" });
    el.lastAction.textContent = `${actionLabel(action)} requested`;
    try {
      const body = await api("POST", `/api/memories/${state.memoryId}/chunks?inline=false`, {
        parent_chunk_id: parent,
        action,
        session_id: state.sessionId,
      });
      if (memoryId !== state.memoryId) return; // the viewer left this memory meanwhile
      const chunk = body.chunk;
      state.cursor = chunk.chunk_id;
      upsertNode({
        id: chunk.chunk_id, parent, action: chunk.action || action, pose: chunk.pose,
        index: chunk.chunk_index, state: "ready", kind: "served",
      });
      if (chunk.outcome === "miss") learnEstimate(chunk.wait_ms);
      logStep(action, chunk, false);
      play(chunk);
      renderTree();
      refetchTree(200);
      refreshWalk();
    } catch (err) {
      el.lastAction.textContent = `${actionLabel(action)} failed`;
      if (memoryId === state.memoryId) {
        showError(err, `The step ${actionLabel(action)} could not be taken.`);
      }
    } finally {
      refreshStatus();
      state.busy = false;
      stopLoading();
      setControls(true);
      renderPending();
    }
  }

  function childFor(parent, action) {
    for (const n of state.nodes.values()) {
      if (n.parent === parent && n.action === action) return n;
    }
    return null;
  }

  function logStep(action, chunk, isRoot) {
    const row = document.createElement("tr");
    const n = state.steps++;
    row.dataset.chunkId = chunk.chunk_id;
    const outcome = chunk.outcome;
    const cells = [
      String(n),
      isRoot ? `start (${chunk.pose})` : actionLabel(action),
      null,
      fmtWait(chunk.wait_ms),
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 2) {
        td.appendChild(badge(outcome));
      } else {
        td.textContent = text;
      }
      row.appendChild(td);
    });
    el.log.prepend(row);
    if (outcome) {
      el.badge.hidden = false;
      el.badge.className = `badge ${outcome}`;
      el.badge.textContent = OUTCOME_LABEL[outcome] || outcome;
      el.badge.dataset.outcome = outcome;
      el.lastWait.textContent = `waited ${fmtWait(chunk.wait_ms)}`;
      el.lastAction.textContent = isRoot ? "first chunk" : `${actionLabel(action)} · chunk ${chunk.chunk_index}`;
    }
  }

  function badge(outcome) {
    const span = document.createElement("span");
    if (!outcome) { span.textContent = "–"; return span; }
    span.className = `badge ${outcome}`;
    span.textContent = OUTCOME_LABEL[outcome] || outcome;
    return span;
  }

  // ---------------------------------------------------------------- journey download

  el.journey.addEventListener("click", async () => {
    if (!state.sessionId) return;
    const path = `/api/sessions/${state.sessionId}/journey.mp4`;
    el.journey.disabled = true;
    el.journeyStatus.textContent = `Stitching ${state.steps} chunk${state.steps === 1 ? "" : "s"}…`;
    try {
      let res;
      try { res = await fetch(path, { headers: window.rewindAuth.headers() }); } catch (err) {
        throw new ApiError("network", `the service could not be reached (${err.message}).`, null, 0);
      }
      if (!res.ok) throw await errorFrom(res, "GET", path);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = `rewind-journey-${state.sessionId.slice(0, 8)}.mp4`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      el.journeyStatus.textContent = `Saved ${a.download} (${(blob.size / 1024 / 1024).toFixed(1)} MB).`;
    } catch (err) {
      el.journeyStatus.textContent = "";
      showError(err, "The journey could not be downloaded.");
    } finally {
      el.journey.disabled = false;
    }
  });

  // ---------------------------------------------------------------- chunk tree (SSE + GET)

  function upsertNode(patch) {
    const old = state.nodes.get(patch.id) || {};
    const merged = { ...old };
    for (const [k, v] of Object.entries(patch)) if (v !== undefined) merged[k] = v;
    if (!("parent" in merged)) merged.parent = undefined; // unknown until the tree is fetched
    state.nodes.set(patch.id, merged);
    return merged;
  }

  function applyTree(memory) {
    for (const c of memory.chunks) {
      const known = state.nodes.get(c.chunk_id);
      const status = c.status === "pending" ? "running" : c.status;
      // A live event may be newer than this GET: never downgrade ready.
      const st = known && known.state === "ready" ? "ready" : status;
      upsertNode({
        id: c.chunk_id, action: c.action, pose: c.pose, index: c.chunk_index, state: st,
      });
      state.nodes.get(c.chunk_id).parent = c.parent_chunk_id;
    }
    renderTree();
  }

  function refetchTree(delay) {
    if (state.refetchTimer !== null || !state.memoryId) return;
    const memoryId = state.memoryId;
    state.refetchTimer = setTimeout(async () => {
      state.refetchTimer = null;
      try {
        const memory = await api("GET", `/api/memories/${memoryId}`);
        if (memoryId === state.memoryId) applyTree(memory);
      } catch (err) {
        showError(err, "The chunk tree could not be loaded.");
      }
    }, delay);
  }

  async function openEvents() {
    if (state.events) state.events.close();
    if (!window.EventSource) return;
    // EventSource cannot send Authorization: with a token, ask for a signed, short-lived URL.
    let url = `/api/memories/${state.memoryId}/events`;
    if (window.rewindAuth.token()) {
      try { url = (await api("GET", `${url}-url`)).url; } catch (_) { /* keep the plain URL */ }
    }
    const source = new EventSource(url);
    state.events = source;
    const setLive = (on, text) => {
      el.live.textContent = text;
      el.live.classList.toggle("on", on);
    };
    source.onopen = () => setLive(true, "live");
    source.onerror = () => {
      setLive(false, source.readyState === 2 ? "offline" : "reconnecting");
      // A signed stream URL expires ([auth] media_url_ttl_s): ask for a fresh one.
      if (source.readyState === 2 && window.rewindAuth.token() && state.events === source) {
        setTimeout(() => { if (state.events === source) openEvents(); }, 3000);
      }
    };
    const on = (type, fn) => source.addEventListener(type, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch (_) { return; }
      fn(data);
      el.tree.dataset.lastEvent = type;
      renderTree();
    });
    on("snapshot", (d) => {
      for (const [id, st] of Object.entries(d.chunks || {})) {
        const n = upsertNode({ id, state: st });
        if (n.parent === undefined) refetchTree(100);
      }
    });
    on("speculation_started", (d) => {
      const n = upsertNode({
        id: d.chunk_id, action: d.action, pose: d.pose, state: "running", kind: "speculative",
        probability: d.probability, startedAt: d.at * 1000,
      });
      if (n.parent === undefined) refetchTree(100);
    });
    on("speculation_cancelled", (d) => {
      const n = state.nodes.get(d.chunk_id);
      if (n && n.state !== "ready") upsertNode({ id: d.chunk_id, state: "cancelled", reason: d.reason });
    });
    on("chunk_ready", (d) => {
      const n = upsertNode({ id: d.chunk_id, state: "ready" });
      if (d.gpu_seconds) learnEstimate(d.gpu_seconds * 1000);
      if (n.parent === undefined) refetchTree(100);
    });
    on("chunk_served", (d) => {
      upsertNode({ id: d.chunk_id, state: "ready" });
    });
  }

  function category(n) {
    if (n.state === "ready") return "ready";
    if (n.state === "running" || n.state === "pending") {
      return n.kind === "speculative" ? "speculated" : "running";
    }
    return "gone";
  }

  const byAction = (a, b) => {
    const ia = ACTION_ORDER.indexOf(a.action);
    const ib = ACTION_ORDER.indexOf(b.action);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a.index || 0) - (b.index || 0);
  };

  function childrenOf(id) {
    const out = [];
    for (const n of state.nodes.values()) if (n.parent === id) out.push(n);
    return out.sort(byAction);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function renderTree() {
    const root = el.tree;
    const cursor = state.nodes.get(state.cursor);
    root.textContent = "";
    state.treeVersion += 1;
    root.dataset.version = String(state.treeVersion);
    root.dataset.cursor = state.cursor || "";
    if (!cursor) { el.treeSummary.textContent = "No chunk yet."; return; }

    const MAX_CHILDREN = 8;
    const MAX_GRAND = 4;
    const children = childrenOf(cursor.id).slice(0, MAX_CHILDREN);
    const grand = new Map(children.map((c) => [c.id, childrenOf(c.id).slice(0, MAX_GRAND)]));
    const slots = Math.max(1, children.reduce((s, c) => s + Math.max(1, grand.get(c.id).length), 0));
    const rowH = 26;
    const height = Math.max(150, 34 + slots * rowH + 16);
    const top = 34 + (height - 50 - slots * rowH) / 2; // centred when there are few branches
    const width = 380;
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const X = [34, 118, 214, 316];
    const midY = top + (slots * rowH) / 2;

    for (const [i, label] of ["parent", "now", "next", "after"].entries()) {
      svg("text", { x: X[i], y: 16, class: "col-label", "text-anchor": "middle" }, root).textContent = label;
    }
    const edges = svg("g", { class: "edges" }, root);
    const nodes = svg("g", { class: "nodes" }, root);

    const drawNode = (n, x, y, role, r) => {
      const cat = category(n);
      const g = svg("g", {
        class: `node ${cat} ${role}`, "data-chunk-id": n.id, "data-state": cat, "data-role": role,
        "data-probability": n.probability ?? "",
        transform: `translate(${x},${y})`,
      }, nodes);
      svg("circle", { r }, g);
      const title = svg("title", {}, g);
      const p = n.probability ? ` · p=${Number(n.probability).toFixed(2)}` : "";
      title.textContent = `${actionLabel(n.action) || n.pose} · chunk ${n.index ?? "?"} · ${cat}${p}`;
      return g;
    };
    const label = (text, x, y, cls) => {
      svg("text", { x, y, class: `node-label ${cls || ""}`, "dominant-baseline": "middle" }, nodes)
        .textContent = text;
    };
    const edge = (x1, y1, x2, y2, cat) => {
      const mx = (x1 + x2) / 2;
      svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: `edge ${cat}` }, edges);
    };

    const parent = cursor.parent ? state.nodes.get(cursor.parent) : null;
    if (parent) {
      edge(X[0], midY, X[1], midY, "ready");
      drawNode(parent, X[0], midY, "parent", 9);
      label(actionLabel(cursor.action), (X[0] + X[1]) / 2 - 8, midY - 10, "edge-label");
    } else {
      svg("text", { x: X[0], y: midY, class: "col-label", "text-anchor": "middle", "dominant-baseline": "middle" }, root)
        .textContent = "photo";
    }

    let slot = 0;
    const counts = { ready: 0, running: 0, speculated: 0, gone: 0 };
    for (const child of children) {
      const gs = grand.get(child.id);
      const span = Math.max(1, gs.length);
      const cy = top + (slot + span / 2) * rowH;
      const cat = category(child);
      counts[cat] += 1;
      edge(X[1], midY, X[2], cy, cat);
      drawNode(child, X[2], cy, "child", 8);
      label(`${actionLabel(child.action)}${pct(child.probability)}`, X[2] + 12, cy - 9, "");
      gs.forEach((g, j) => {
        const gy = top + (slot + j + 0.5) * rowH;
        edge(X[2], cy, X[3], gy, category(g));
        drawNode(g, X[3], gy, "grandchild", 6);
        label(`${actionLabel(g.action)}${pct(g.probability)}`, X[3] + 10, gy, "small");
      });
      slot += span;
    }
    drawNode(cursor, X[1], midY, "cursor", 13);
    label(`#${cursor.index ?? "?"}`, X[1] - 8, midY + 24, "small");

    const extra = childrenOf(cursor.id).length - children.length;
    const parts = [`You are at chunk ${cursor.index ?? "?"} (${actionLabel(cursor.action) || cursor.pose}).`];
    if (!children.length) parts.push(nothingPrepared());
    else {
      const bits = Object.entries(counts).filter(([, v]) => v)
        .map(([k, v]) => `${v} ${k === "gone" ? "cancelled" : k}`);
      parts.push(`Next: ${bits.join(", ")}${extra > 0 ? ` (+${extra} more)` : ""}.`);
    }
    el.treeSummary.textContent = parts.join(" ");
  }

  // Probability the policy gave a speculated chunk, as " 62%" (empty when unknown).
  function pct(p) {
    return p === undefined || p === null ? "" : ` ${Math.round(Number(p) * 100)}%`;
  }

  // Right after a step the planner has not run yet: say so instead of "nothing prepared".
  function nothingPrepared() {
    if (state.policy === "none") {
      return "Policy none: nothing is prepared ahead; each step is generated when you take it.";
    }
    const front = el.videos[state.front];
    if (front && front.getAttribute("src") && !front.ended) {
      return "Choosing what to prepare next while this chunk plays…";
    }
    return "Nothing prepared for the next step.";
  }

  // ---------------------------------------------------------------- service status

  // /api/health "policy": a name, or {arm: policy} when sessions are split between arms.
  function policyText(p) {
    if (!p) return "?";
    if (typeof p === "string") return p;
    const entries = Object.entries(p);
    if (entries.length === 1) return String(entries[0][1]);
    return entries.map(([arm, name]) => `${arm}: ${name}`).join(", ");
  }

  async function refreshStatus() {
    try {
      const h = await api("GET", "/api/health");
      const gpu = h.gpu || {};
      const busy = gpu.busy_by_kind ? (gpu.busy_by_kind.demand || 0) + (gpu.busy_by_kind.speculative || 0) : gpu.busy;
      const policy = policyText(h.policy);
      el.status.textContent = `${h.status} · policy ${policy} · GPU ${busy ?? "?"}/${gpu.slots ?? "?"} busy`;
      el.status.classList.toggle("bad", h.status !== "healthy");
    } catch (err) {
      el.status.textContent = `service unreachable (${err.detail || err.message})`;
      el.status.classList.add("bad");
    }
  }

  el.errorClose.addEventListener("click", clearError);
  refreshStatus();
  setInterval(refreshStatus, 5000);

  const memoryParam = new URLSearchParams(location.search).get("memory");
  if (memoryParam) resume(memoryParam);
})();

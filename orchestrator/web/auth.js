// Rewind: the access token the pages send as "Authorization: Bearer <token>".
// Signing in is the frontend's job; here a small field in the top bar takes the token
// (a Supabase access token, or the operator token on the dashboard) and keeps it in
// localStorage. With [auth] mode = "none" the field can stay empty.
(function () {
  "use strict";
  const KEY = "rewind.token";

  function token() {
    try { return localStorage.getItem(KEY) || ""; } catch (_) { return ""; }
  }

  function setToken(value) {
    try {
      if (value) localStorage.setItem(KEY, value); else localStorage.removeItem(KEY);
    } catch (_) { /* storage disabled: the token lives for this page only */ }
    current = value;
  }

  let current = token();

  // Headers for fetch(): the caller's extra headers plus Authorization when a token is set.
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (current) h.authorization = `Bearer ${current}`;
    return h;
  }

  function mount() {
    const bar = document.querySelector(".topbar");
    if (!bar || document.getElementById("token-input")) return;
    const label = document.createElement("label");
    label.className = "token-field";
    label.htmlFor = "token-input";
    label.textContent = "Token ";
    const input = document.createElement("input");
    input.id = "token-input";
    input.type = "password";
    input.autocomplete = "off";
    input.spellcheck = false;
    input.placeholder = "access token (optional)";
    input.value = current;
    input.addEventListener("change", () => {
      setToken(input.value.trim());
      document.dispatchEvent(new CustomEvent("rewind:token"));
    });
    label.appendChild(input);
    bar.appendChild(label);
  }

  window.rewindAuth = { headers, token: () => current, setToken };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();

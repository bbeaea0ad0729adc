// The recipient page's file check: the SHA-256 of a chosen file, computed in this browser with
// WebCrypto, compared with the fingerprints the page lists. The file is never uploaded.
// A module file (the CSP forbids inline script); without it the page still plays and downloads.
const input = document.getElementById("check-file");
const result = document.getElementById("check-result");

if (input && result && globalThis.crypto && crypto.subtle) {
  const known = new Map(
    [...document.querySelectorAll("code.ev-sha")].map((c) => [c.textContent.trim(), c]));
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    result.textContent = `Checking ${file.name}…`;
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    const match = known.get(hex);
    result.dataset.sha256 = hex;
    result.dataset.matches = match ? "yes" : "no";
    result.textContent = match
      ? `${file.name} matches: its SHA-256 is ${hex}, as shared.`
      : `${file.name} does NOT match any recording shared here (SHA-256 ${hex}). Do not rely on it; ask the sender for a new copy.`;
  });
}

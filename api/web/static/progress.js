// Progress of a background job, as progressive enhancement: without this file the page has a
// refresh link. Polls the page's JSON progress route and updates the bar and the status (an
// aria-live region); when the job finishes, reloads so the server renders the download or the
// error. A module file, not inline script: the Content-Security-Policy forbids inline script.
const box = document.getElementById("export-progress");

if (box) {
  const url = box.dataset.progressUrl;
  const bar = document.getElementById("export-bar");
  const percent = document.getElementById("export-percent");
  const message = document.getElementById("export-message");
  let delay = Number(box.dataset.pollMs) || 1000;

  const poll = async () => {
    let state;
    try {
      const answer = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store",
                                        credentials: "same-origin" });
      if (!answer.ok || !(answer.headers.get("content-type") || "").includes("json")) {
        // Signed out, or refused: the page itself says why.
        window.location.reload();
        return;
      }
      state = await answer.json();
    } catch {
      delay = Math.min(delay * 2, 30000); // the server is restarting: back off, keep trying
      window.setTimeout(poll, delay);
      return;
    }
    bar.value = state.percent;
    bar.textContent = `${state.percent}%`;
    percent.textContent = `${state.percent}%`;
    message.textContent = state.message;
    if (state.finished) {
      window.location.reload();
      return;
    }
    delay = Number(state.poll_ms) || delay;
    window.setTimeout(poll, delay);
  };
  window.setTimeout(poll, delay);
}

// The SAR workspace's enhancements; every page works without this file.
// 1. Progress: rows marked data-job poll the request's progress (JSON, same origin) every
//    second and show it; when a job finishes the page reloads to show what it made. Without
//    script, the page's "Refresh progress" link does the same by hand.
// 2. Drawing a box: dragging over the "as recorded" preview fills in the box form (frame
//    pixels), which still works typed by hand; dragging across the waveform fills in the
//    sound range (seconds) the same way. Loaded as a module file: the CSP forbids
//    inline script.

const progressRoot = document.querySelector("[data-progress-url]");

if (progressRoot) {
  const url = progressRoot.dataset.progressUrl;
  const watched = () => [...document.querySelectorAll("[data-job]")]
    .filter((row) => !["succeeded", "failed", "cancelled"].includes(row.dataset.state));
  const poll = async () => {
    if (watched().length === 0) return;
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (answer.ok) {
        const { jobs } = await answer.json();
        for (const job of jobs) {
          const row = document.querySelector(`[data-job="${job.id}"]`);
          if (!row) continue;
          const bar = row.querySelector("progress");
          if (bar) bar.value = job.progress;
          const message = row.querySelector("[data-job-message]");
          const text = `${job.state[0].toUpperCase()}${job.state.slice(1)}${job.message ? `: ${job.message}` : ""}`;
          if (message && message.textContent !== text) message.textContent = text;
          if (job.finished && row.dataset.state !== job.state) {
            window.location.reload();
            return;
          }
        }
      }
    } catch (error) {
      // A missed poll is retried; the Refresh link is still there.
    }
    window.setTimeout(poll, 1000);
  };
  window.setTimeout(poll, 1000);
}

const image = document.getElementById("preview-before");
const area = document.getElementById("draw-area");
const form = document.getElementById("box-form");

for (const hint of document.querySelectorAll(".ev-js-only")) hint.hidden = false;

if (image && area && form) {
  const width = Number(image.dataset.width);
  const height = Number(image.dataset.height);
  const outline = document.createElement("div");
  outline.className = "ev-draw-box";
  outline.hidden = true;
  area.append(outline);
  let start = null;

  const at = (event) => {
    const rect = image.getBoundingClientRect();
    const x = Math.min(Math.max(event.clientX - rect.left, 0), rect.width);
    const y = Math.min(Math.max(event.clientY - rect.top, 0), rect.height);
    return { x, y, sx: width / rect.width, sy: height / rect.height };
  };
  const show = (a, b) => {
    outline.hidden = false;
    outline.style.left = `${Math.min(a.x, b.x)}px`;
    outline.style.top = `${Math.min(a.y, b.y)}px`;
    outline.style.width = `${Math.abs(b.x - a.x)}px`;
    outline.style.height = `${Math.abs(b.y - a.y)}px`;
  };
  const fill = (a, b) => {
    const set = (id, value) => { document.getElementById(id).value = String(value); };
    set("box-x0", Math.max(0, Math.floor(Math.min(a.x, b.x) * a.sx)));
    set("box-y0", Math.max(0, Math.floor(Math.min(a.y, b.y) * a.sy)));
    set("box-x1", Math.min(width, Math.ceil(Math.max(a.x, b.x) * a.sx)));
    set("box-y1", Math.min(height, Math.ceil(Math.max(a.y, b.y) * a.sy)));
    const frame = image.dataset.frame;
    for (const id of ["box-first", "box-last"]) {
      const field = document.getElementById(id);
      if (!field.value) field.value = frame;
    }
  };

  image.draggable = false;
  area.addEventListener("pointerdown", (event) => {
    start = at(event);
    area.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  area.addEventListener("pointermove", (event) => {
    if (start) show(start, at(event));
  });
  area.addEventListener("pointerup", (event) => {
    if (!start) return;
    const end = at(event);
    if (Math.abs(end.x - start.x) > 2 && Math.abs(end.y - start.y) > 2) {
      show(start, end);
      fill(start, end);
      document.getElementById("box-x0").focus();
    }
    start = null;
  });
}

const wave = document.getElementById("waveform");
const waveArea = document.getElementById("wave-area");
const audioForm = document.getElementById("audio-form");

if (wave && waveArea && audioForm) {
  const duration = Number(wave.dataset.duration);
  const band = document.createElement("div");
  band.className = "ev-draw-box";
  band.hidden = true;
  waveArea.append(band);
  let from = null;
  const x = (event) => {
    const rect = wave.getBoundingClientRect();
    return { x: Math.min(Math.max(event.clientX - rect.left, 0), rect.width), width: rect.width, height: rect.height };
  };
  const paint = (a, b) => {
    band.hidden = false;
    band.style.left = `${Math.min(a.x, b.x)}px`;
    band.style.top = "0px";
    band.style.width = `${Math.abs(b.x - a.x)}px`;
    band.style.height = `${a.height}px`;
  };
  wave.draggable = false;
  waveArea.addEventListener("pointerdown", (event) => {
    from = x(event);
    waveArea.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  waveArea.addEventListener("pointermove", (event) => {
    if (from) paint(from, x(event));
  });
  waveArea.addEventListener("pointerup", (event) => {
    if (!from) return;
    const to = x(event);
    if (Math.abs(to.x - from.x) > 2) {
      paint(from, to);
      const seconds = (p) => (Math.round((p.x / p.width) * duration * 10) / 10).toFixed(1);
      const [a, b] = from.x < to.x ? [from, to] : [to, from];
      document.getElementById("audio_start").value = seconds(a);
      document.getElementById("audio_end").value = seconds(b);
      document.getElementById("audio_start").focus();
    }
    from = null;
  });
}

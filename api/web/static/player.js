// The watch page's player tools, as progressive enhancement: without this file the browser's
// own controls still play and seek. Adds the UK wall-clock time of the frame on screen (the
// recording's capture start plus the playback position; beside it the same corrected for a
// flagged recorder clock), frame steps and playback speed.
// Loaded as a module file: the Content-Security-Policy forbids inline script.

const video = document.getElementById("player");
const tools = document.getElementById("player-tools");

if (video && tools) {
  const start = Date.parse(video.dataset.start);
  const frame = 1 / (Number(video.dataset.fps) || 25);
  const clock = document.getElementById("player-clock");
  // A flagged recorder clock: its offset (device minus vault, ms) also gives the vault's time.
  const corrected = document.getElementById("player-clock-corrected");
  const offset = Number(video.dataset.clockOffsetMs || "0");
  const ukTime = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short",
  });

  const showClock = () => {
    if (!Number.isNaN(start)) {
      clock.textContent = ukTime.format(new Date(start + video.currentTime * 1000));
      if (corrected) {
        corrected.textContent = ukTime.format(new Date(start + video.currentTime * 1000 - offset));
      }
    }
  };
  const step = (frames) => {
    video.pause();
    const end = Number.isFinite(video.duration) ? video.duration : Infinity;
    video.currentTime = Math.min(end, Math.max(0, video.currentTime + frames * frame));
  };

  // Thumbnails while scrubbing: one sheet of frames (api/routes/thumbnails.py), fetched the
  // first time the slider moves, so a page view decrypts the recording for thumbnails once
  // (one custody event) however long the officer scrubs; each position draws its tile from
  // the sheet already here. The slider works by keyboard (arrow keys, Home, End).
  const scrub = document.getElementById("scrub");
  const preview = document.getElementById("scrub-preview");
  if (scrub && preview) {
    const tiles = Number(scrub.dataset.tiles) || 1;
    const fraction = () => Number(scrub.value) / Number(scrub.max);
    let sheet = null;
    const draw = () => {
      if (!sheet || !sheet.complete || !sheet.naturalWidth) return;
      const width = sheet.naturalWidth / tiles;
      const height = sheet.naturalHeight;
      const tile = Math.min(tiles - 1, Math.floor(fraction() * tiles));
      preview.width = Math.round(width);
      preview.height = height;
      preview.getContext("2d").drawImage(sheet, tile * width, 0, width, height, 0, 0, width, height);
      preview.dataset.tile = String(tile);
      preview.hidden = false;
    };
    const describe = () => {
      if (!Number.isNaN(start) && Number.isFinite(video.duration)) {
        scrub.setAttribute("aria-valuetext",
          ukTime.format(new Date(start + fraction() * video.duration * 1000)));
      }
    };
    const go = () => {
      if (Number.isFinite(video.duration)) video.currentTime = fraction() * video.duration;
    };
    scrub.addEventListener("input", () => {
      if (!sheet) {
        sheet = new Image();
        sheet.addEventListener("load", draw);
        sheet.src = scrub.dataset.sheet;
      }
      draw();
      describe();
    });
    scrub.addEventListener("change", go);
    scrub.addEventListener("keydown", (event) => { if (event.key === "Enter") go(); });
    video.addEventListener("timeupdate", () => {
      if (document.activeElement !== scrub && Number.isFinite(video.duration) && video.duration > 0) {
        scrub.value = String(Math.round((video.currentTime / video.duration) * Number(scrub.max)));
        describe();
      }
    });
  }

  video.addEventListener("timeupdate", showClock);
  video.addEventListener("seeked", showClock);
  video.addEventListener("loadedmetadata", showClock);
  document.getElementById("frame-back").addEventListener("click", () => step(-1));
  document.getElementById("frame-forward").addEventListener("click", () => step(1));
  document.getElementById("speed").addEventListener("change", (event) => {
    video.playbackRate = Number(event.target.value);
  });
  tools.hidden = false;
  showClock();
}

// Mark in and out for the clip form: the UK wall-clock time of the frame on screen goes into
// the form's date and time fields (which a person can also type). The in mark is remembered
// for this camera in this tab (sessionStorage), so a clip can start on one recording and end
// on the next: mark in, open the next recording, mark out. I and O work only while the player
// has focus (WCAG 2.1.4: a single-key shortcut must not fire while typing elsewhere).
const clipForm = document.getElementById("clip-form");

if (video && clipForm) {
  const start = Date.parse(video.dataset.start);
  const markTools = document.getElementById("mark-tools");
  const note = document.getElementById("mark-note");
  const fields = {
    day: document.getElementById("clip-day"),
    start: document.getElementById("clip-start"),
    end: document.getElementById("clip-end"),
  };
  const key = `evidence-vault:mark-in:${clipForm.dataset.source}`;
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const wall = (ms) => {
    const p = Object.fromEntries(parts.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
    const millis = String(Math.floor(((ms % 1000) + 1000) % 1000)).padStart(3, "0");
    return { day: `${p.year}-${p.month}-${p.day}`, time: `${p.hour}:${p.minute}:${p.second}.${millis}` };
  };
  const here = () => wall(start + video.currentTime * 1000);
  const markIn = () => {
    const at = here();
    fields.day.value = at.day;
    fields.start.value = at.time;
    sessionStorage.setItem(key, JSON.stringify(at));
    note.textContent = `Marked in at ${at.time}.`;
  };
  const markOut = () => {
    const at = here();
    if (!fields.start.value) {
      fields.day.value = at.day;
    }
    fields.end.value = at.time;
    note.textContent = `Marked out at ${at.time}.`;
  };

  if (!Number.isNaN(start)) {
    const earlier = JSON.parse(sessionStorage.getItem(key) || "null");
    if (earlier && !fields.start.value) {
      fields.day.value = earlier.day;
      fields.start.value = earlier.time;
      note.textContent = `Start marked earlier at ${earlier.time} (this camera).`;
    }
    document.getElementById("mark-in").addEventListener("click", markIn);
    document.getElementById("mark-out").addEventListener("click", markOut);
    video.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "i" || event.key === "I") { markIn(); event.preventDefault(); }
      if (event.key === "o" || event.key === "O") { markOut(); event.preventDefault(); }
    });
    clipForm.addEventListener("submit", () => sessionStorage.removeItem(key));
    markTools.hidden = false;
  }
}

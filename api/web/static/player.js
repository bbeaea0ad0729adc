// The watch page's player tools, as progressive enhancement: without this file the browser's
// own controls still play and seek. Adds the UK wall-clock time of the frame on screen (the
// recording's capture start plus the playback position), frame steps and playback speed.
// Loaded as a module file: the Content-Security-Policy forbids inline script.

const video = document.getElementById("player");
const tools = document.getElementById("player-tools");

if (video && tools) {
  const start = Date.parse(video.dataset.start);
  const frame = 1 / (Number(video.dataset.fps) || 25);
  const clock = document.getElementById("player-clock");
  const ukTime = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short",
  });

  const showClock = () => {
    if (!Number.isNaN(start)) {
      clock.textContent = ukTime.format(new Date(start + video.currentTime * 1000));
    }
  };
  const step = (frames) => {
    video.pause();
    const end = Number.isFinite(video.duration) ? video.duration : Infinity;
    video.currentTime = Math.min(end, Math.max(0, video.currentTime + frames * frame));
  };

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

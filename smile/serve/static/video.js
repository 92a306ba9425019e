// The page's moving faces: the camera (getUserMedia; a few frames a second to /camera/{session}/frame,
// boxes and probabilities drawn over the live picture) and video files (POST /video, then poll
// /video/{job}; the annotated video plays, the CSV and timeline download).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const FPS = 5;             // frames a second sent to the server, at most
  const SIDE = 640;          // longest side of a frame sent
  const MAIN = "Smiling";

  function say(element, text, isError = false) {
    $(element).textContent = text;
    $(element).className = isError ? "error" : "";
  }

  // --- modes -----------------------------------------------------------------------------------------
  const modes = { photo: "photo-mode", camera: "camera-mode", video: "video-mode" };
  function show(mode) {
    for (const [name, id] of Object.entries(modes)) $(id).hidden = name !== mode;
    document.querySelectorAll("#modes button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === mode)));
    if (mode !== "camera") stopCamera();
  }
  document.querySelectorAll("#modes button").forEach((b) => b.addEventListener("click", () => show(b.dataset.mode)));

  function mainAttribute(attributes) {
    return attributes.includes(MAIN) ? MAIN : attributes[0];
  }

  // --- camera ----------------------------------------------------------------------------------------
  let stream = null, session = null, running = false, sent = 0, startedAt = 0, recent = [];
  const grab = document.createElement("canvas");

  function refusal(err) {
    switch (err && err.name) {
      case "NotAllowedError":
      case "SecurityError":
        return "The camera was refused: this page may not use it. Allow the camera for this site in the browser's settings (the camera icon in the address bar), then press Start again.";
      case "NotFoundError":
      case "OverconstrainedError":
        return "No camera was found on this device.";
      case "NotReadableError":
      case "AbortError":
        return "The camera could not be opened: another program may be using it.";
      default:
        return `The camera could not be started (${err && err.name ? err.name + ": " : ""}${err && err.message ? err.message : err}).`;
    }
  }

  async function newSession() {
    const response = await fetch("/camera", { method: "POST" });
    if (!response.ok) throw new Error(`POST /camera answered HTTP ${response.status}`);
    session = (await response.json()).session;
  }

  async function startCamera() {
    if (running) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("camera-status", "This browser gives no camera to this page: a camera needs the page on https, or on localhost.", true);
      document.body.dataset.camera = "unavailable";
      return;
    }
    say("camera-status", "Asking for the camera...");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (err) {
      say("camera-status", refusal(err), true);
      document.body.dataset.camera = "refused";
      return;
    }
    const video = $("camera");
    video.srcObject = stream;
    await video.play().catch(() => {});
    try {
      await newSession();
    } catch (err) {
      say("camera-status", `The server would not start a camera session (${err.message}).`, true);
      stopCamera();
      return;
    }
    $("live").hidden = false;
    $("camera-start").hidden = true;
    $("camera-stop").hidden = false;
    running = true;
    sent = 0;
    recent = [];
    startedAt = performance.now();
    document.body.dataset.camera = "on";
    say("camera-status", "Camera on: sending frames...");
    loop();
  }

  function stopCamera() {
    running = false;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    if (session) fetch(`/camera/${session}`, { method: "DELETE" }).catch(() => {});
    session = null;
    $("camera-start").hidden = false;
    $("camera-stop").hidden = true;
    if (document.body.dataset.camera === "on") {
      document.body.dataset.camera = "off";
      say("camera-status", "Camera off.");
    }
  }

  function frameBlob(video) {
    const scale = Math.min(1, SIDE / Math.max(video.videoWidth, video.videoHeight));
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    return new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
  }

  async function loop() {
    const video = $("camera");
    while (running) {
      const began = performance.now();
      if (video.readyState < 2 || !video.videoWidth) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const blob = await frameBlob(video);
      const t = ((performance.now() - startedAt) / 1000).toFixed(3);
      let response, body;
      try {
        response = await fetch(`/camera/${session}/frame?t=${t}`, { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: blob });
        body = await response.json();
      } catch (err) {
        if (!running) break;
        say("camera-status", `The server could not be reached (${err}); trying again...`, true);
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!running) break;
      if (response.status === 404 && body.error === "no_session") {
        await newSession().catch(() => {});
        continue;
      }
      if (!response.ok) {
        say("camera-status", `${body.detail || response.statusText} (HTTP ${response.status})`, true);
      } else {
        sent += 1;
        drawLive(body);
      }
      const wait = 1000 / FPS - (performance.now() - began);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }

  function drawLive(result) {
    const video = $("camera"), overlay = $("overlay");
    overlay.width = video.clientWidth;
    overlay.height = video.clientHeight;
    const scale = overlay.width / result.image.width;
    const context = overlay.getContext("2d");
    context.clearRect(0, 0, overlay.width, overlay.height);
    const name = mainAttribute(result.attributes);
    context.lineWidth = 3;
    context.font = "14px system-ui, sans-serif";
    const items = [];
    for (const face of result.faces) {
      const p = face.smoothed[name];
      const colour = face.predicted[name] ? "#2e7d32" : "#e53935";
      const x = face.box.x * scale, y = face.box.y * scale, w = face.box.w * scale, h = face.box.h * scale;
      context.strokeStyle = colour;
      context.strokeRect(x, y, w, h);
      const label = `#${face.track} ${name} ${p.toFixed(2)}`;
      const width = context.measureText(label).width + 8;
      const top = y >= 20 ? y - 20 : y + h;
      context.fillStyle = colour;
      context.fillRect(x - 1.5, top, width, 20);
      context.fillStyle = "#fff";
      context.fillText(label, x + 3, top + 15);
      const item = document.createElement("li");
      item.textContent = `Face #${face.track}: ${name} ${p.toFixed(2)} smoothed (this frame ${face.probabilities[name].toFixed(2)})` +
        (face.predicted[name] ? `: ${name.toLowerCase()}` : "");
      item.dataset.track = face.track;
      items.push(item);
    }
    $("camera-faces").replaceChildren(...items);
    overlay.dataset.faces = String(result.faces.length);
    overlay.dataset.frames = String(sent);
    recent.push(performance.now());
    if (recent.length > 10) recent.shift();
    const rate = recent.length > 1 ? (recent.length - 1) / ((recent[recent.length - 1] - recent[0]) / 1000) : 0;
    const n = result.faces.length;
    say("camera-status", `Camera on: ${rate.toFixed(1)} frames a second to the server; ` +
      (n ? `${n} face${n > 1 ? "s" : ""} (the server took ${Math.round(result.time_ms.total)} ms).` : "no face in view."));
    document.body.dataset.cameraFrames = String(sent);
  }

  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);

  // --- video files -----------------------------------------------------------------------------------
  async function sendVideo(file) {
    if (!file) return;
    $("video-result").hidden = true;
    $("annotated").removeAttribute("src");
    say("video-status", `Sending ${file.name} (${(file.size / 2 ** 20).toFixed(1)} MiB)...`);
    let response, body;
    try {
      response = await fetch("/video", {
        method: "POST",
        headers: {
          "Content-Type": file.type && file.type.startsWith("video/") ? file.type : "application/octet-stream",
          "X-Filename": encodeURIComponent(file.name),
        },
        body: file,
      });
      body = await response.json();
    } catch (err) {
      say("video-status", `The server could not be reached or gave no answer (${err}).`, true);
      return;
    }
    if (!response.ok) {
      say("video-status", `${file.name}: ${body.detail || response.statusText} (HTTP ${response.status})`, true);
      return;
    }
    poll(body.job, file.name);
  }

  async function poll(job, name) {
    for (;;) {
      let body;
      try {
        body = await (await fetch(`/video/${job}`)).json();
      } catch (err) {
        say("video-status", `The server stopped answering (${err}).`, true);
        return;
      }
      if (body.state === "failed") {
        say("video-status", body.error || `${name} could not be predicted.`, true);
        document.body.dataset.video = "failed";
        return;
      }
      if (body.state === "done") {
        showVideo(body);
        return;
      }
      const of = body.total ? ` of ${body.total}` : "";
      say("video-status", body.state === "queued" ? `${name}: waiting for the video before it...` : `Predicting ${name}: frame ${body.frames}${of}...`);
      await new Promise((r) => setTimeout(r, 400));
    }
  }

  function showVideo(body) {
    const files = body.files;
    const video = $("annotated");
    if (files["annotated.mp4"]) video.src = files["annotated.mp4"];
    $("csv-link").href = files["frames.csv"];
    $("tracks-link").href = files["tracks.csv"];
    $("json-link").href = files["tracks.json"];
    $("timeline").src = files["timeline.png"] + `?${Date.now()}`;
    $("video-summary").textContent = body.summary.line + (body.summary.problem ? ` (${body.summary.problem})` : "");
    $("video-result").hidden = false;
    const rate = body.seconds ? ` at ${(body.summary.frames / body.seconds).toFixed(1)} frames a second` : "";
    say("video-status", `${body.name}: ${body.summary.frames} frames predicted${rate}.`);
    document.body.dataset.video = "done";
  }

  $("video-file").addEventListener("change", (event) => sendVideo(event.target.files[0]));
  const drop = $("video-drop");
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => event.preventDefault()));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    sendVideo(event.dataTransfer.files[0]);
  });

  // ?mode=camera or #camera opens that mode (a link, a kiosk)
  const wanted = new URLSearchParams(location.search).get("mode") || location.hash.slice(1);
  if (modes[wanted]) show(wanted);
})();

// The page of `python -m smile serve`: send a photo to /predict, draw the boxes and probability bars.
"use strict";

const $ = (id) => document.getElementById(id);
let attributes = [];

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// Smiling first, then the rest from most to least probable.
function ordered(probabilities) {
  return Object.entries(probabilities).sort(([a, p], [b, q]) =>
    (b === "Smiling") - (a === "Smiling") || q - p);
}

function bar(name, p, yes) {
  const row = document.createElement("div");
  row.className = "bar" + (yes ? " yes" : "");
  row.dataset.attribute = name;
  row.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="p"></span>';
  row.querySelector(".name").textContent = name;
  row.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
  row.querySelector(".p").textContent = p.toFixed(2);
  return row;
}

function show(result, url) {
  const photo = $("photo");
  photo.onload = () => {
    const scale = photo.clientWidth / result.image.width;
    $("boxes").replaceChildren(...result.faces.map((face) => {
      const box = document.createElement("div");
      const first = ordered(face.probabilities)[0];
      box.className = "box" + (face.predicted[first[0]] ? " yes" : "");
      Object.assign(box.style, {
        left: face.box.x * scale + "px", top: face.box.y * scale + "px",
        width: face.box.w * scale + "px", height: face.box.h * scale + "px",
      });
      const label = document.createElement("span");
      label.textContent = `#${face.face} ${first[0]} ${first[1].toFixed(2)}`;
      box.append(label);
      return box;
    }));
  };
  photo.src = url;
  $("faces").replaceChildren(...result.faces.map((face) => {
    const item = document.createElement("li");
    item.className = "face";
    const title = document.createElement("div");
    title.textContent = face.method === "whole_image"
      ? "No face found: the whole image, taken as a face crop"
      : `Face ${face.face} (detector score ${face.score.toFixed(2)})`;
    item.append(title, ...ordered(face.probabilities).map(([name, p]) => bar(name, p, face.predicted[name])));
    return item;
  }));
  $("result").hidden = false;
}

// Nothing of an earlier photo stays on the page while another is sent, or after it fails.
function clear() {
  $("result").hidden = true;
  $("boxes").replaceChildren();
  $("faces").replaceChildren();
  $("photo").removeAttribute("src");
}

async function send(file) {
  if (!file) return;
  status(`Sending ${file.name}...`);
  clear();
  const started = performance.now();
  let response, body;
  try {
    response = await fetch("/predict", {
      method: "POST",
      headers: { "Content-Type": file.type && file.type.startsWith("image/") ? file.type : "application/octet-stream" },
      body: file,
    });
    body = await response.json();
  } catch (err) {
    status(`The server could not be reached or gave no answer (${err}).`, true);
    return;
  }
  const ms = Math.round(performance.now() - started);
  if (!response.ok) {
    status(failureText(file.name, response.status, body), true);
    return;
  }
  show(body, URL.createObjectURL(file));
  const n = body.faces.filter((face) => face.method !== "whole_image").length;
  const timing = `the request took ${ms} ms (server: ${Math.round(body.time_ms.total)} ms)`;
  status(n === 0
    ? `No face found in ${file.name}: ${body.faces.length ? "the whole image was predicted as a face crop" : "nothing to predict"}; ${timing}.`
    : `${n} face${n > 1 ? "s" : ""} in ${file.name}; ${timing}.`);
  document.body.dataset.done = String(Date.now());
}

$("file").addEventListener("change", (event) => send(event.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
  event.preventDefault();
  drop.classList.add("over");
}));
["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  send(event.dataTransfer.files[0]);
});

fetch("/health").then((r) => r.json()).then((health) => {
  attributes = health.attributes;
  $("model").textContent = `Model ${health.model} (${health.backend}): ${attributes.join(", ")}; ` +
    "a face counts as having an attribute when its probability is above the attribute's threshold (" +
    attributes.map((name) => `${name} ${health.thresholds[name].toFixed(2)}`).join(", ") + ")." +
    (health.trained_on === "synthetic faces"
      ? " This model was trained on drawn faces (the demo) and knows no others: its answers on photographs mean little."
      : "");
}).catch(() => status("The server's /health did not answer.", true));

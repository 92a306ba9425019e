// What the page of `smile serve` says when /predict refuses a file: words for the person who chose it,
// not the API's (which names Content-Types and form fields). Loaded before app.js; the tests read it
// with node.
"use strict";

function failureText(name, status, body) {
  const code = body && body.error;
  const detail = (body && body.detail) || "";
  if (code === "not_an_image" || code === "unsupported_content_type") {
    return /damaged or truncated/.test(detail)
      ? `${name} is a damaged or cut-short image: choose another photo.`
      : `${name} is not a photo: choose a JPEG, PNG, WebP or BMP file.`;
  }
  if (code === "empty") return `${name} is empty: choose a photo.`;
  if (code === "too_large") {
    const limit = detail.match(/\(([\d.]+ MiB)\)/);
    return `${name} is larger than this server accepts${limit ? ` (${limit[1]})` : ""}: choose a smaller photo.`;
  }
  if (code === "too_many_pixels") {
    const sizes = detail.match(/is (\d+x\d+) = .*at most ([\d,]+)/);
    return `${name} has too many pixels${sizes ? ` (${sizes[1]}; at most ${sizes[2]})` : ""}: choose a smaller photo.`;
  }
  if (code === "busy") return `The server is busy with other photos: send ${name} again in a moment.`;
  return `${name}: ${detail || "the server could not predict on it"} (HTTP ${status}).`;
}

if (typeof module !== "undefined") module.exports = { failureText };

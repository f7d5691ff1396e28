// errlearn UI: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Ask: stream the answer from POST /ui/ask/stream (server-sent events over fetch).
  function parseEvents(buffer, onEvent) {
    var parts = buffer.split("\n\n");
    var rest = parts.pop();
    parts.forEach(function (block) {
      var name = "message";
      var data = "";
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event: ") === 0) name = line.slice(7);
        else if (line.indexOf("data: ") === 0) data += line.slice(6);
      });
      if (data) onEvent(name, JSON.parse(data));
    });
    return rest;
  }

  function citationItem(c) {
    var li = document.createElement("li");
    li.appendChild(document.createTextNode(c.kind + " "));
    var a = document.createElement("a");
    a.href = c.href;
    a.textContent = c.id;
    li.appendChild(a);
    return li;
  }

  function setupAsk(form) {
    if (!window.fetch || !window.ReadableStream || !window.TextDecoder) return;
    var card = document.getElementById("answer-card");
    var answer = document.getElementById("answer");
    var meta = document.getElementById("answer-meta");
    var citations = document.getElementById("citations");
    var error = document.getElementById("answer-error");
    var button = document.getElementById("ask-submit");

    function fail(message) {
      error.textContent = message;
      error.hidden = false;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = new URLSearchParams(new FormData(form));
      card.hidden = false;
      error.hidden = true;
      answer.textContent = "";
      meta.textContent = "Thinking…";
      citations.textContent = "";
      answer.setAttribute("aria-busy", "true");
      button.disabled = true;
      fetch(form.dataset.stream, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRF-Token": body.get("csrf_token") || "" },
      })
        .then(function (response) {
          var type = response.headers.get("content-type") || "";
          if (!response.ok || type.indexOf("text/event-stream") !== 0) {
            throw new Error(response.status === 403 || response.redirected
              ? "Your session has expired: reload the page and sign in again."
              : "The server answered " + response.status + ".");
          }
          var reader = response.body.getReader();
          var decoder = new TextDecoder();
          var buffer = "";
          function onEvent(name, data) {
            if (name === "delta") {
              answer.appendChild(document.createTextNode(data.text));
            } else if (name === "done") {
              answer.innerHTML = data.answer_html; // escaped by the server; only our links are markup
              meta.textContent = data.status + " · " + data.model + " · " + data.latency_ms + " ms";
              if (data.citations.length === 0) {
                var none = document.createElement("li");
                none.textContent = "No evidence was cited.";
                citations.appendChild(none);
              }
              data.citations.forEach(function (c) { citations.appendChild(citationItem(c)); });
            } else if (name === "error") {
              meta.textContent = "";
              fail(data.message);
            }
          }
          function pump() {
            return reader.read().then(function (chunk) {
              if (chunk.done) return;
              buffer = parseEvents(buffer + decoder.decode(chunk.value, { stream: true }), onEvent);
              return pump();
            });
          }
          return pump();
        })
        .catch(function (err) {
          meta.textContent = "";
          fail(err.message || String(err));
        })
        .finally(function () {
          answer.setAttribute("aria-busy", "false");
          button.disabled = false;
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("ask-form");
    if (form) setupAsk(form);
  });
})();

// Upload a file to /api/events/upload, then follow the import on /ws/imports/<id>/ (falls back to
// polling /api/imports/<id> if the WebSocket cannot connect). Works on any [data-tg-upload] element.
(function () {
  "use strict";

  function csrfToken(root) {
    var input = root.querySelector("input[name=csrfmiddlewaretoken]");
    if (input && input.value) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function setup(root) {
    var form = root.querySelector("form");
    var job = root.querySelector(".tg-upload__job");
    var bar = root.querySelector(".tg-upload__bar");
    var percent = root.querySelector(".tg-upload__percent");
    var statusText = root.querySelector(".tg-upload__status");
    var errorsLink = root.querySelector(".tg-upload__errors");
    var errorBox = root.querySelector(".tg-upload__error");
    var button = form.querySelector("button[type=submit]");

    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = false;
      button.disabled = false;
    }

    function render(p) {
      job.hidden = false;
      var pct = Math.max(0, Math.min(100, Number(p.percent) || 0));
      bar.value = pct;
      percent.textContent = pct.toFixed(1) + "%";
      ["processed", "accepted", "duplicates", "rejected"].forEach(function (name) {
        var el = root.querySelector('[data-count="' + name + '"]');
        if (el && p[name] !== undefined) el.textContent = Number(p[name]).toLocaleString();
      });
      var text = "Import " + p.import_id + ": " + p.status;
      if (p.status === "running" && p.total_estimate) {
        text += " (about " + Number(p.total_estimate).toLocaleString() + " rows)";
      }
      if (p.error) text += " — " + p.error;
      statusText.textContent = text;
      var done = p.status === "completed" || p.status === "failed";
      if (done) {
        button.disabled = false;
        if (p.rejected > 0) {
          errorsLink.href = p.errors_url || "/api/imports/" + p.import_id + "/errors.csv";
          errorsLink.hidden = false;
        }
      }
      return done;
    }

    function poll(id) {
      fetch("/api/imports/" + id, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (p) { if (!render(p)) setTimeout(function () { poll(id); }, 2000); })
        .catch(function () { setTimeout(function () { poll(id); }, 5000); });
    }

    function follow(first) {
      if (render(first)) return;
      var id = first.import_id;
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var socket, finished = false, opened = false;
      try {
        socket = new WebSocket(scheme + window.location.host + "/ws/imports/" + id + "/");
      } catch (e) {
        poll(id);
        return;
      }
      socket.onopen = function () {
        opened = true;
        // The job may have moved (or finished) before the socket joined its group.
        fetch("/api/imports/" + id, { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (p) { if (render(p)) { finished = true; socket.close(); } });
      };
      socket.onmessage = function (message) {
        var p = JSON.parse(message.data);
        if (p.type !== "import.progress") return;
        if (render(p)) { finished = true; socket.close(); }
      };
      socket.onclose = function () { if (!finished) poll(id); };
      socket.onerror = function () { if (!opened && !finished) { finished = true; poll(id); } };
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      errorBox.hidden = true;
      errorsLink.hidden = true;
      var file = form.querySelector("input[type=file]").files[0];
      if (!file) { showError("Choose a file first."); return; }
      var data = new FormData();
      data.append("file", file);
      var format = form.querySelector("select[name=format]").value;
      if (format) data.append("format", format);
      button.disabled = true;
      statusText.textContent = "Uploading " + file.name + "…";
      job.hidden = false;
      bar.removeAttribute("value");  // indeterminate while the bytes travel
      fetch(root.getAttribute("data-upload-url"), {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(root), Accept: "application/json" },
      })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (res) {
          if (!res.ok) {
            job.hidden = true;
            showError(res.body.detail || "The upload was refused.");
            return;
          }
          follow(res.body);
        })
        .catch(function () { job.hidden = true; showError("The upload failed; check the connection and retry."); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-tg-upload]").forEach(setup);
  });
})();

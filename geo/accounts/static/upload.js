// Upload page: choose or drop a file, check it on the server (format, features, CRS or
// the server's guess, name already taken), then upload it with a progress bar and show
// the report in plain words. Every text goes in with textContent (never as HTML).
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var M = JSON.parse(form.dataset.messages || "{}");
  var csrf = form.dataset.csrf;
  var fileInput = document.getElementById("f-file");
  var drop = document.getElementById("drop-zone");
  var fileState = document.getElementById("file-state");
  var fileName = document.getElementById("file-name");
  var progress = document.getElementById("upload-progress");
  var nameInput = document.getElementById("f-name");
  var layerField = document.getElementById("layer-field");
  var layerSelect = document.getElementById("f-layer");
  var crsSelect = document.getElementById("f-crs");
  var crsNote = document.getElementById("crs-note");
  var conflictField = document.getElementById("conflict-field");
  var conflictQuestion = document.getElementById("conflict-question");
  var replaceRadio = document.getElementById("f-replace");
  var keepRadio = document.getElementById("f-keep");
  var report = document.getElementById("upload-report");
  var chosen = null;

  function msg(key, vars) {
    var v = vars || {};
    // One pass: a value containing "{size}" (a file name) is never substituted again.
    return (M[key] || key).replace(/\{(\w+)\}/g, function (m, k) {
      return Object.prototype.hasOwnProperty.call(v, k) ? String(v[k]) : m;
    });
  }

  function send(url, data, onDone) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    progress.value = 0;
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
    };
    xhr.onload = function () {
      progress.value = 100;
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      onDone(xhr.status, body || {});
    };
    xhr.onerror = function () { showError(msg("layers.network")); };
    xhr.send(data);
  }

  function showError(text) {
    report.hidden = false;
    report.className = "acc-report acc-error";
    report.replaceChildren();
    var p = document.createElement("p");
    p.setAttribute("role", "alert");
    p.textContent = text;
    report.appendChild(p);
  }

  function showConflict(c) {
    conflictField.hidden = false;
    conflictQuestion.textContent = c.may_replace
      ? msg("layers.conflict", { name: c.name })
      : msg("layers.conflict_forbidden", { name: c.name });
    replaceRadio.disabled = !c.may_replace;
    replaceRadio.checked = false;
    keepRadio.checked = !c.may_replace;
  }

  function inspect() {
    if (!chosen) return;
    report.hidden = true;
    conflictField.hidden = true;
    fileState.textContent = msg("layers.checking");
    var data = new FormData();
    data.append("file", chosen);
    if (!layerField.hidden && layerSelect.value) data.append("layer", layerSelect.value);
    if (nameInput.value.trim()) data.append("name", nameInput.value.trim());
    send("/app/layers/inspect", data, function (status, r) {
      if (status !== 200) {
        fileState.textContent = "";
        showError(r.message || r.description || String(status));
        return;
      }
      if (r.needs_layer) {
        layerSelect.replaceChildren();
        r.layers.forEach(function (name) {
          var o = document.createElement("option");
          o.value = name;
          o.textContent = name;
          layerSelect.appendChild(o);
        });
        layerField.hidden = false;
        inspect();
        return;
      }
      if (!nameInput.value.trim() && r.name) nameInput.value = r.name;
      if (r.crs_missing) {
        crsSelect.value = r.suggested_crs || "";
        crsNote.textContent = msg("layers.crs_missing");
        fileState.textContent = chosen.name;
      } else {
        crsSelect.value = "";
        crsNote.textContent = msg("layers.crs_from_file", { crs: r.crs });
        fileState.textContent = msg("layers.checked", {
          format: msg("format." + r.format),
          features: r.features,
          type: msg("type." + r.geometry_type),
        });
      }
      if (r.conflict) showConflict(r.conflict);
    });
  }

  function size(bytes) {
    var lang = document.documentElement.lang || "it";
    if (bytes < 1024 * 1024) return Math.max(1, Math.ceil(bytes / 1024)).toLocaleString(lang) + " kB";
    return (bytes / (1024 * 1024)).toLocaleString(lang, { maximumFractionDigits: 1 }) + " MB";
  }

  function choose(file) {
    chosen = file || null;
    fileName.classList.toggle("acc-none", !chosen);
    fileName.textContent = chosen
      ? msg("layers.chosen", { name: chosen.name, size: size(chosen.size) })
      : msg("layers.none_chosen");
    nameInput.value = "";
    layerField.hidden = true;
    layerSelect.replaceChildren();
    inspect();
  }

  fileInput.addEventListener("change", function () { choose(fileInput.files[0]); });
  ["dragenter", "dragover"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("acc-dragover"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("acc-dragover"); });
  });
  drop.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
  });
  layerSelect.addEventListener("change", inspect);

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (!chosen) {
      showError(msg("layers.pick_first"));
      return;
    }
    var data = new FormData();
    data.append("file", chosen);
    if (nameInput.value.trim()) data.append("name", nameInput.value.trim());
    if (crsSelect.value) data.append("crs", crsSelect.value);
    if (!layerField.hidden && layerSelect.value) data.append("layer", layerSelect.value);
    var choice = form.querySelector('input[name="on_conflict"]:checked');
    if (!conflictField.hidden && choice) data.append("on_conflict", choice.value);
    fileState.textContent = msg("layers.uploading");
    send("/app/layers/new", data, function (status, r) {
      fileState.textContent = "";
      if (status === 409 && r.conflict) {
        showConflict(r.conflict);
        conflictQuestion.focus && conflictField.scrollIntoView();
        return;
      }
      if (status !== 201) {
        showError(r.message || r.description || String(status));
        return;
      }
      conflictField.hidden = true;
      report.hidden = false;
      report.className = "acc-report";
      report.replaceChildren();
      var h = document.createElement("h2");
      h.textContent = r.heading;
      var ul = document.createElement("ul");
      r.lines.forEach(function (line) {
        var li = document.createElement("li");
        li.textContent = line;
        ul.appendChild(li);
      });
      var p = document.createElement("p");
      var a = document.createElement("a");
      a.href = r.href;
      a.textContent = msg("layers.open_map");
      p.appendChild(a);
      report.append(h, ul, p);
      report.focus();
    });
  });
})();

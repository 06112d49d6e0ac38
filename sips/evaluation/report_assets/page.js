// The page of `sips report`: builds the comparison and runs the blind listening test from the
// report data embedded in the page. Plain DOM, no library, no network.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const REFERENCE = "reference";
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function number(value, digits) {
    return value === null || value === undefined ? "—" : value.toFixed(digits);
  }

  const DIGITS = { si_sdr: 2, quality: 3 };
  const digits = (column) => (column in DIGITS ? DIGITS[column] : 2);
  const shown = DATA.reference ? [REFERENCE, ...DATA.systems] : DATA.systems.slice();

  // --- tabs ---------------------------------------------------------------------------------
  function showTab(name) {
    for (const tab of ["compare", "test"]) {
      $(tab).hidden = tab !== name;
      $("tab-" + tab).setAttribute("aria-selected", String(tab === name));
    }
    stopAll();
  }
  $("tab-compare").addEventListener("click", () => showTab("compare"));
  $("tab-test").addEventListener("click", () => showTab("test"));

  // One sample plays at a time.
  function stopAll(except) {
    for (const audio of document.querySelectorAll("audio")) if (audio !== except) audio.pause();
  }
  document.addEventListener("play", (event) => stopAll(event.target), true);

  // --- comparison ---------------------------------------------------------------------------
  function buildSummary() {
    const table = $("summary");
    const head = el("tr", {}, [el("th", { text: "system" })]);
    for (const [, label] of DATA.columns) head.appendChild(el("th", { text: label }));
    table.appendChild(el("thead", {}, [head]));
    const best = {};
    for (const [column] of DATA.columns) {
      const means = DATA.systems.map((s) => (DATA.summary[s][column] || [null])[0]).filter((v) => v !== null);
      best[column] = means.length > 1 ? Math.max(...means) : null;
    }
    const body = el("tbody");
    for (const system of shown) {
      const row = el("tr", {}, [el("td", { text: system })]);
      for (const [column] of DATA.columns) {
        const [mean, half] = DATA.summary[system][column] || [null, null];
        const text = mean === null ? "—" : number(mean, digits(column)) + (half === null ? "" : " ± " + number(half, digits(column)));
        const bold = system !== REFERENCE && mean !== null && mean === best[column];
        row.appendChild(el("td", { text: text, className: bold ? "best" : "" }));
      }
      body.appendChild(row);
    }
    table.appendChild(body);
    $("summary-note").textContent = DATA.columns.length
      ? `Mean ± half-width of the 95 % confidence interval over ${DATA.files.length} file(s); higher is better in every column, the best system in bold.`
      : "No metric was computed for this report.";
  }

  function buildScale() {
    if (!DATA.colours) return;
    const bar = el("span", { className: "colourbar" });
    bar.style.background = "linear-gradient(to right, " + DATA.colours.join(", ") + ")";
    const note = $("scale-note");
    note.append("Spectrograms: 0–8 kHz (at 16 kHz), time left to right; colour from 80 dB below ");
    note.appendChild(bar);
    note.append(" to the loudest bin of the file's samples, one scale per file.");
  }

  function buildFiles() {
    const holder = $("files");
    DATA.files.forEach((file) => {
      const grid = el("div", { className: "grid" });
      for (const system of shown) {
        const cell = el("div", { className: "cell" }, [
          el("div", { className: "system", text: system }),
          el("audio", { controls: "", preload: "metadata", src: file.audio[system] }),
        ]);
        if (file.images[system]) {
          cell.appendChild(el("img", { className: "spectrogram", src: file.images[system], alt: `spectrogram of ${system}`, loading: "lazy" }));
        }
        const scores = file.scores[system] || {};
        const list = el("dl");
        for (const [column, label] of DATA.columns) {
          if (!(column in scores)) continue;
          list.append(el("dt", { text: label }), el("dd", { text: number(scores[column], digits(column)) }));
        }
        cell.appendChild(list);
        grid.appendChild(cell);
      }
      holder.appendChild(el("article", { className: "file" }, [el("h3", { text: `${file.name} (${file.seconds.toFixed(2)} s)` }), grid]));
    });
  }

  // --- blind listening test -----------------------------------------------------------------
  const KEY = "sips-report-" + DATA.id;
  const TRIALS = DATA.trials;
  let state = load();

  function load() {
    try {
      const saved = JSON.parse(window.localStorage.getItem(KEY));
      if (saved && typeof saved === "object" && saved.ratings) return saved;
    } catch (error) {
      // no storage (private mode, or a browser that keeps none for file:// pages): ratings live in the page only
    }
    return { listener: "", current: 0, finished: false, ratings: {} };
  }

  function save() {
    try {
      window.localStorage.setItem(KEY, JSON.stringify(state));
    } catch (error) {
      // see load()
    }
    updateDownloads();
  }

  function ratedTrials() {
    return TRIALS.filter((trial, index) => trial.stimuli.every((s) => (state.ratings[index] || {})[s.label] !== undefined)).length;
  }

  function showStart() {
    $("test-start").hidden = false;
    $("trial").hidden = true;
    $("done").hidden = true;
    $("reference-instructions").hidden = !DATA.reference;
    $("listener").value = state.listener;
    const begun = Object.keys(state.ratings).length > 0;
    $("start").textContent = begun ? "Resume" : "Start";
    $("restart").hidden = !begun;
    $("resume-note").textContent = begun ? `${state.listener} has rated ${ratedTrials()} of ${TRIALS.length} files in this browser.` : "";
  }

  $("start").addEventListener("click", () => {
    const name = $("listener").value.trim();
    if (!name) {
      $("resume-note").textContent = "Please enter your name or initials first.";
      $("listener").focus();
      return;
    }
    state.listener = name;
    save();
    if (state.finished) showDone();
    else showTrial(Math.min(state.current, TRIALS.length - 1));
  });

  $("restart").addEventListener("click", () => {
    if (!window.confirm("Delete the ratings kept in this browser for this report and start again?")) return;
    state = { listener: $("listener").value.trim(), current: 0, finished: false, ratings: {} };
    save();
    showStart();
  });

  function showTrial(index) {
    stopAll();
    state.current = index;
    save();
    const trial = TRIALS[index];
    const file = DATA.files[trial.file];
    $("test-start").hidden = true;
    $("done").hidden = true;
    $("trial").hidden = false;
    $("progress").max = TRIALS.length;
    $("progress").value = index;
    $("progress-text").textContent = `File ${index + 1} of ${TRIALS.length}`;
    const reference = $("open-reference");
    reference.hidden = !DATA.reference;
    for (const old of reference.querySelectorAll("audio")) old.remove();
    if (DATA.reference) reference.appendChild(el("audio", { controls: "", preload: "metadata", src: file.audio[REFERENCE] }));
    const holder = $("stimuli");
    holder.replaceChildren();
    const ratings = (state.ratings[index] = state.ratings[index] || {});
    for (const stimulus of trial.stimuli) {
      const rated = ratings[stimulus.label] !== undefined;
      const slider = el("input", { type: "range", min: "0", max: "100", step: "1", "aria-label": `rating of ${stimulus.label}` });
      slider.value = rated ? ratings[stimulus.label] : 50;
      slider.dataset.label = stimulus.label;
      const output = el("output", { text: rated ? String(ratings[stimulus.label]) : "–" });
      const row = el("div", { className: "stimulus" + (rated ? "" : " unrated") }, [
        el("span", { className: "label", text: stimulus.label }),
        el("audio", { controls: "", preload: "metadata", src: file.audio[stimulus.system] }),
        slider,
        output,
      ]);
      slider.addEventListener("input", () => {
        ratings[stimulus.label] = Number(slider.value);
        output.textContent = slider.value;
        row.classList.remove("unrated");
        save();
        updateNext();
      });
      holder.appendChild(row);
    }
    $("previous").disabled = index === 0;
    $("next").textContent = index === TRIALS.length - 1 ? "Finish" : "Next";
    updateNext();
  }

  function updateNext() {
    const index = state.current;
    const ratings = state.ratings[index] || {};
    const missing = TRIALS[index].stimuli.filter((s) => ratings[s.label] === undefined).length;
    $("next").disabled = missing > 0;
    $("next-note").textContent = missing ? `Rate ${missing} more sample(s) to go on.` : "";
  }

  $("previous").addEventListener("click", () => showTrial(Math.max(state.current - 1, 0)));
  $("next").addEventListener("click", () => {
    if (state.current < TRIALS.length - 1) {
      showTrial(state.current + 1);
      return;
    }
    state.finished = true;
    save();
    showDone();
  });

  function showDone() {
    stopAll();
    $("test-start").hidden = true;
    $("trial").hidden = true;
    $("done").hidden = false;
    $("done-text").textContent = `${state.listener}, you rated ${ratedTrials()} of ${TRIALS.length} files. Download your ratings below and send the file to whoever runs the test.`;
  }

  // --- downloads ----------------------------------------------------------------------------
  function records() {
    const rows = [];
    TRIALS.forEach((trial, index) => {
      const ratings = state.ratings[index] || {};
      for (const stimulus of trial.stimuli) {
        if (ratings[stimulus.label] === undefined) continue;
        rows.push({ trial: index + 1, file: DATA.files[trial.file].name, label: stimulus.label, system: stimulus.system, rating: ratings[stimulus.label] });
      }
    });
    return rows;
  }

  function csvCell(value) {
    const text = String(value);
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function download(kind) {
    const rows = records();
    let text;
    if (kind === "json") {
      const saved = { format: "sips-ratings", version: 1, report: DATA.id, listener: state.listener, saved: new Date().toISOString(), scale: "0-100", complete: ratedTrials() === TRIALS.length, ratings: rows };
      text = JSON.stringify(saved, null, 1) + "\n";
    } else {
      const fields = ["report", "listener", "trial", "file", "label", "system", "rating"];
      const lines = [fields.join(",")];
      for (const row of rows) lines.push([DATA.id, state.listener, row.trial, row.file, row.label, row.system, row.rating].map(csvCell).join(","));
      text = lines.join("\r\n") + "\r\n";
    }
    const blob = new Blob([text], { type: kind === "json" ? "application/json" : "text/csv" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `ratings-${slug(state.listener)}-${DATA.id}.${kind}` });
    document.body.appendChild(link);
    link.click();
    window.setTimeout(() => {
      URL.revokeObjectURL(link.href);
      link.remove();
    }, 1000);
  }

  function slug(text) {
    return text.replace(/[^A-Za-z0-9_-]+/g, "_").replace(/^_+|_+$/g, "") || "listener";
  }

  function updateDownloads() {
    const count = records().length;
    for (const id of ["download-json", "download-csv"]) $(id).disabled = count === 0 || !state.listener;
    $("rated-count").textContent = `${ratedTrials()} of ${TRIALS.length} files rated`;
  }
  $("download-json").addEventListener("click", () => download("json"));
  $("download-csv").addEventListener("click", () => download("csv"));

  // --- start --------------------------------------------------------------------------------
  $("about").textContent = `${DATA.files.length} file(s), ${DATA.systems.length} system(s): ${DATA.systems.join(", ")}${DATA.reference ? "; with references" : ""}. Report ${DATA.id}, seed ${DATA.seed}. Made by sips report; works offline.`;
  buildSummary();
  buildScale();
  buildFiles();
  showStart();
  updateDownloads();
  showTab(window.location.hash === "#test" ? "test" : "compare");
})();

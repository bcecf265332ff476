// The page of `m2aenet web`: sends a photo to the local server, shows what comes back.
// Plain JavaScript, no libraries, nothing fetched from outside this machine.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { source: null, busy: false, again: false, maxUpload: Infinity };

function setState(name) {
  document.body.dataset.state = name;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").hidden = true;
  setState($("result").hidden ? "idle" : "error");
}

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: the server answered ${response.status}`);
  return response.json();
}

// Resolves when every image has loaded (or failed: the caller checks naturalWidth).
function loaded(images) {
  return Promise.all(images.map((image) => image.complete && image.naturalWidth
    ? Promise.resolve()
    : new Promise((resolve) => {
        image.onload = resolve;
        image.onerror = resolve;
      })));
}

function percent(value) {
  return `${(100 * value).toFixed(1)} %`;
}

function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function showStats(run) {
  const rows = [
    ["Blurred share", percent(run.fraction)],
    ["Network time", seconds(run.ms)],
    ["Total time", seconds(run.total_ms)],
    ["Size", `${run.width} \u00d7 ${run.height}`],
    ["File", `${run.format}, ${run.bit_depth}-bit`],
    ["Threshold", run.threshold.toFixed(2)],
  ];
  if (run.tiles > 1) rows.push(["Tiles", String(run.tiles)]);
  if (run.queued_ms > 200) rows.push(["Waited for others", seconds(run.queued_ms)]);
  const stats = $("stats");
  stats.replaceChildren(...rows.map(([name, value]) => {
    const row = document.createElement("div");
    const term = document.createElement("dt");
    const detail = document.createElement("dd");
    term.textContent = name;
    detail.textContent = value;
    row.append(term, detail);
    return row;
  }));
  $("warnings").replaceChildren(...run.warnings.map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
}

async function showRun(run) {
  const images = [$("after"), $("before"), $("overlay")];
  $("after").src = run.files.after;
  $("before").src = run.files.before;
  $("overlay").src = run.files.overlay;
  await loaded(images);
  if (images.some((image) => !image.naturalWidth)) {
    showError(`${run.name}: the result pictures could not be shown; run it again`);
    return;
  }
  $("status").hidden = true;
  showStats(run);
  $("download").href = `${run.files.restored}?download=1`;
  $("download").setAttribute("download", run.downloads.restored);
  $("download-mask").href = `${run.files.mask}?download=1`;
  $("download-mask").setAttribute("download", run.downloads.mask);
  $("result").dataset.run = run.id;
  $("result").hidden = false;
  fit();
  setState("done");
}

// Shows the photo as large as the window allows (small photos are enlarged up to 4x).
function fit() {
  const image = $("after");
  if (!image.naturalWidth || $("result").hidden) return;
  const room = Math.max(240, window.innerHeight - 290);
  const scale = Math.min($("viewer").clientWidth / image.naturalWidth, room / image.naturalHeight, 4);
  for (const box of [$("compare"), $("mask-view")]) {
    box.style.width = `${Math.floor(image.naturalWidth * scale)}px`;
  }
}

// Runs the current source at the slider's threshold; a change while busy runs once more after.
async function deblur() {
  if (!state.source) return;
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  const source = state.source;
  const threshold = $("threshold").value;
  $("error").hidden = true;
  $("status-text").textContent = `Deblurring ${source.name} \u2026`;
  $("status").hidden = false;
  setState("busy");
  try {
    let url;
    let body;
    if (source.file) {
      url = `/api/deblur?name=${encodeURIComponent(source.name)}&threshold=${threshold}`;
      body = source.file;
    } else {
      url = `/api/examples/${encodeURIComponent(source.name)}?threshold=${threshold}`;
      body = "";
    }
    const response = await fetch(url, {
      method: "POST",
      body,
      headers: { "Content-Type": "application/octet-stream" },
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      showError(answer.error || `the server answered ${response.status}`);
    } else {
      await showRun(answer);
    }
  } catch (error) {
    showError(`the page lost the server (${error.message}); is \`m2aenet web\` still running?`);
  } finally {
    state.busy = false;
    if (state.again) {
      state.again = false;
      deblur();
    }
  }
}

function choose(source) {
  state.source = source;
  for (const button of $("examples").children) {
    button.classList.toggle("current", !source.file && button.dataset.name === source.name);
  }
  deblur();
}

function chooseFile(file) {
  if (!file) return;
  if (file.size > state.maxUpload) {
    const mb = Math.round(state.maxUpload / 2 ** 20);
    showError(`${file.name}: larger than ${mb} MB; use \`m2aenet deblur\` for it`);
    return;
  }
  choose({ name: file.name, file });
}

function showExamples(examples) {
  $("examples").replaceChildren(...examples.map((example) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.name = example.name;
    button.title = example.name;
    const image = document.createElement("img");
    image.src = example.url;
    image.alt = "";
    image.loading = "lazy";
    const label = document.createElement("span");
    label.textContent = example.label;
    button.append(image, label);
    button.addEventListener("click", () => choose({ name: example.name, file: null }));
    return button;
  }));
}

function selectTab(mask) {
  $("tab-compare").setAttribute("aria-selected", String(!mask));
  $("tab-mask").setAttribute("aria-selected", String(mask));
  $("compare").hidden = mask;
  $("mask-view").hidden = !mask;
}

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    chooseFile(event.target.files[0]);
    event.target.value = "";  // picking the same file again runs it again
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    chooseFile(event.dataTransfer.files[0]);
  });
  // A photo dropped beside the target must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  const threshold = $("threshold");
  threshold.addEventListener("input", () => {
    $("threshold-value").textContent = Number(threshold.value).toFixed(2);
  });
  threshold.addEventListener("change", deblur);

  const split = $("split");
  split.addEventListener("input", () => {
    $("compare").style.setProperty("--split", `${split.value}%`);
  });
  window.addEventListener("resize", fit);
  $("tab-compare").addEventListener("click", () => selectTab(false));
  $("tab-mask").addEventListener("click", () => selectTab(true));
}

async function start() {
  wire();
  try {
    const info = await getJSON("/api/info");
    state.maxUpload = info.max_upload_bytes;
    $("threshold").value = info.threshold;
    $("threshold-value").textContent = Number(info.threshold).toFixed(2);
    showExamples(await getJSON("/api/examples"));
  } catch (error) {
    showError(error.message);
  }
}

start();

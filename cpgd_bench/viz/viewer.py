"""The self-contained ``index.html`` of `cpgd-bench dataset show` (no network: images are files next to it).

Controls: a frame slider (arrow keys), layer toggles (keys 1-6), a zoom slider (+/- keys) with nearest-pixel
scaling. The state lives in the URL hash (``#frame=3&layer=flow_next&zoom=2``), so a view can be linked;
``document.body.dataset.state`` mirrors it. An image that fails to load is reported on the console.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font:14px system-ui,sans-serif;margin:12px;color:#222}
h1{font-size:18px;margin:0 0 8px}
#controls{display:flex;flex-wrap:wrap;gap:14px;align-items:center;margin:8px 0}
#layers label{margin-right:8px;cursor:pointer}
#view{overflow:auto;max-width:100%;max-height:75vh;border:1px solid #ccc;background:#eee}
#view img{display:block;image-rendering:pixelated}
#legend{margin:6px 0;min-height:40px;display:flex;gap:12px;align-items:center}
.swatch{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}
#strip{max-width:100%}
</style></head>
<body>
<h1>__TITLE__</h1>
<img id="strip" src="strip.png" alt="slice type, QP and POC per frame">
<div id="controls">
 <label>frame <input id="frame" type="range" min="0" step="1" value="0"> <span id="frame-label"></span></label>
 <span id="layers"></span>
 <label>zoom <input id="zoom" type="range" min="0.25" max="8" step="0.25" value="1">
  <span id="zoom-label"></span></label>
 <a id="panel" href="#">panel PNG</a>
</div>
<div id="legend"></div>
<div id="view"><img id="layer" alt="layer"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const st = {frame: 0, layer: D.layers[0].name, zoom: 1};
const $ = (id) => document.getElementById(id);
const pad = (n) => String(n).padStart(5, "0");
const img = $("layer");
img.addEventListener("error", () => console.error("dataset show: cannot load " + img.getAttribute("src")));
$("frame").max = D.frames.length - 1;
D.layers.forEach((l, k) => {
  const label = document.createElement("label");
  label.innerHTML = '<input type="radio" name="layer"> ' + (k + 1) + " " + l.title;
  const input = label.firstChild;
  input.value = l.name;
  input.addEventListener("change", () => { st.layer = l.name; update(); });
  $("layers").appendChild(label);
});
function legend() {
  const el = $("legend");
  if (st.layer.startsWith("flow")) {
    el.innerHTML = '<img src="wheel.png" width="64" height="64" alt="flow colour wheel">' +
      "<span>hue: direction (right red, left cyan, down yellow, up violet), saturation: length; wheel radius " +
      D.flow_radius + " px/frame; black: invalid flow (no reference)</span>";
  } else if (st.layer === "blocks") {
    el.innerHTML = D.blocks.map((b) => '<span class="swatch" style="background:' + b.colour + '"></span>' +
      b.name).join("") + "<span>&nbsp;(what each 4x4 block predicts from)</span>";
  } else if (st.layer === "residual") {
    el.innerHTML = '<span>0</span><img src="residual_scale.png" width="256" height="12" alt="colour scale">' +
      "<span>" + D.residual_max + " (|luma residual| at codec bit depth, square-root scale)</span>";
  } else {
    el.textContent = "";
  }
}
function update() {
  const f = D.frames[st.frame];
  $("frame").value = st.frame;
  $("frame-label").textContent = "frame " + f.frame + " (POC " + f.poc + ", " + f.slice + " slice, QP " + f.qp + ")";
  $("zoom").value = st.zoom;
  $("zoom-label").textContent = st.zoom + "x";
  document.querySelectorAll("#layers input").forEach((i) => { i.checked = i.value === st.layer; });
  img.src = "layers/" + pad(f.frame) + "_" + st.layer + ".png";
  img.style.width = D.width * st.zoom + "px";
  img.style.height = D.height * st.zoom + "px";
  $("panel").href = "panels/" + pad(f.frame) + ".png";
  legend();
  const hash = "frame=" + f.frame + "&layer=" + st.layer + "&zoom=" + st.zoom;
  history.replaceState(null, "", "#" + hash);
  document.body.dataset.state = hash;
}
function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const k = D.frames.findIndex((f) => String(f.frame) === p.get("frame"));
  if (k >= 0) st.frame = k;
  if (D.layers.some((l) => l.name === p.get("layer"))) st.layer = p.get("layer");
  const z = parseFloat(p.get("zoom"));
  if (z >= 0.25 && z <= 8) st.zoom = z;
}
$("frame").addEventListener("input", (e) => { st.frame = +e.target.value; update(); });
$("zoom").addEventListener("input", (e) => { st.zoom = +e.target.value; update(); });
document.addEventListener("keydown", (e) => {
  if (e.key === "ArrowRight") st.frame = Math.min(st.frame + 1, D.frames.length - 1);
  else if (e.key === "ArrowLeft") st.frame = Math.max(st.frame - 1, 0);
  else if (e.key === "+" || e.key === "=") st.zoom = Math.min(st.zoom * 2, 8);
  else if (e.key === "-") st.zoom = Math.max(st.zoom / 2, 0.25);
  else if (e.key >= "1" && e.key <= String(D.layers.length)) st.layer = D.layers[+e.key - 1].name;
  else return;
  e.preventDefault();
  update();
});
readHash();
update();
</script>
</body></html>
"""


def viewer_html(meta: dict[str, Any]) -> str:
    """The viewer page for ``show.json``'s ``meta`` (title, size, layers, frames, scales)."""
    fill = {"TITLE": html.escape(meta["title"]), "DATA": json.dumps(meta).replace("</", "<\\/")}
    return re.sub(r"__(TITLE|DATA)__", lambda m: fill[m.group(1)], _PAGE)

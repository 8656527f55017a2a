"""``auditdm review``: a small local web app for labelling audited pairs by hand.

Each pair shows the probe image (and the source image when the auditor changed it), the
question, the target's answer and every reference's answer. A person labels it ``target
failure``, ``ambiguous`` or ``unanswerable`` (the paper's Table 3 categories); labels are appended
to ``<dataset>/labels.jsonl`` as they are given (the last label of a pair wins), and
``auditdm report`` turns them into Table 3. Serves on 127.0.0.1 only.
"""

from __future__ import annotations

import html
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import datasets

from .report import REVIEW_LABELS, read_labels
from .store import load_audit

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AuditDM review: {title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;max-width:70rem}}
.pair{{display:flex;gap:1rem;border:1px solid #ccc;border-radius:6px;padding:.8rem;margin:.8rem 0}}
.pair img{{max-width:220px;max-height:220px;image-rendering:pixelated;border:1px solid #eee}}
.label{{font-weight:bold}} button{{margin-right:.4rem}} .refs li{{margin:.1rem 0}}
</style></head><body>
<h1>AuditDM review: {title}</h1>
<p>{count} pairs where the target disagrees with its references. Label each one; labels are saved as you click.</p>
<p id="counts"></p>
{pairs}
<script>
async function label(probe, value) {{
  const response = await fetch("/label", {{method: "POST", headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{probe_id: probe, label: value}})}});
  const data = await response.json();
  document.querySelector(`[data-probe="${{probe}}"] .label`).textContent = data.label;
  document.getElementById("counts").textContent = "labelled: " +
    Object.entries(data.counts).map(([name, n]) => `${{name}} ${{n}}`).join(" · ");
}}
</script></body></html>
"""


def pair_html(row: dict, label: str | None) -> str:
    probe = html.escape(row["probe_id"])
    source = "" if row["provenance"] == "original" else f'<img alt="source image" src="/image/{probe}?which=source">'
    refs = "".join(f"<li>{html.escape(m)}: <q>{html.escape(a)}</q></li>" for m, a in zip(row["reference_models"], row["reference_answers"]))
    change = row["caption"] or row["edit_command"]
    buttons = "".join(f'<button onclick="label(\'{probe}\', \'{value}\')">{value}</button>' for value in REVIEW_LABELS)
    return (
        f'<div class="pair" data-probe="{probe}">{source}<img alt="probe image" src="/image/{probe}">'
        f"<div><p><b>Q:</b> <span class=\"question\">{html.escape(row['question'])}</span></p>"
        + (f"<p><i>{html.escape(row['provenance'])}: {html.escape(change)}</i></p>" if change else "")
        + f"<p><b>target</b> {html.escape(row['target_model'])}: <q class=\"target\">{html.escape(row['target_answer'])}</q></p>"
        f'<ul class="refs">{refs}</ul><p>consensus: <q>{html.escape(row["consensus_answer"] or "")}</q></p>'
        f'<p>label: <span class="label">{html.escape(label or "unlabelled")}</span></p>{buttons}</div></div>'
    )


class ReviewApp:
    def __init__(self, dataset_dir: str | Path, include_all: bool = False):
        self.root = Path(dataset_dir)
        self.labels_path = self.root / "labels.jsonl"
        audit = load_audit(self.root)
        keep = [i for i, (f, agrees) in enumerate(zip(audit["is_failure"], audit["ensemble_agrees"])) if include_all or (f and agrees)]
        self.rows = audit.select(keep)
        self.raw = self.rows.cast_column("image", datasets.Image(decode=False)).cast_column("source_image", datasets.Image(decode=False))
        self.index = {probe: i for i, probe in enumerate(self.rows["probe_id"])}
        self._lock = threading.Lock()

    def page(self) -> str:
        labels = read_labels(self.labels_path)
        pairs = "\n".join(pair_html(row, labels.get(row["probe_id"])) for row in self.rows.select_columns(
            [c for c in self.rows.column_names if c not in ("image", "source_image")]))
        return PAGE.format(title=html.escape(self.root.name), count=len(self.rows), pairs=pairs)

    def image(self, probe_id: str, which: str) -> bytes | None:
        if probe_id not in self.index:
            return None
        row = self.raw[self.index[probe_id]]
        cell = row["source_image"] if which == "source" and row["source_image"] else row["image"]
        return cell["bytes"]

    def add_label(self, probe_id: str, label: str) -> dict:
        if probe_id not in self.index:
            raise KeyError(f"unknown probe {probe_id!r}")
        if label not in REVIEW_LABELS:
            raise ValueError(f"label must be one of {REVIEW_LABELS}")
        with self._lock, self.labels_path.open("a") as handle:
            handle.write(json.dumps({"probe_id": probe_id, "label": label}) + "\n")
        labels = read_labels(self.labels_path)
        counts = {value: sum(1 for v in labels.values() if v == value) for value in REVIEW_LABELS}
        return {"probe_id": probe_id, "label": label, "counts": counts}


def make_handler(app: ReviewApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlparse(self.path)
            if url.path == "/":
                self._send(HTTPStatus.OK, app.page().encode(), "text/html; charset=utf-8")
            elif url.path.startswith("/image/"):
                data = app.image(url.path[len("/image/"):], parse_qs(url.query).get("which", ["probe"])[0])
                if data is None:
                    self._send(HTTPStatus.NOT_FOUND, b"no such probe", "text/plain")
                else:
                    kind = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
                    self._send(HTTPStatus.OK, data, kind)
            elif url.path == "/labels":
                self._send(HTTPStatus.OK, json.dumps(read_labels(app.labels_path)).encode(), "application/json")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            if urlparse(self.path).path != "/label":
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                return
            try:
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                result = app.add_label(payload["probe_id"], payload["label"])
            except (KeyError, ValueError, json.JSONDecodeError) as error:
                self._send(HTTPStatus.BAD_REQUEST, json.dumps({"error": str(error)}).encode(), "application/json")
                return
            self._send(HTTPStatus.OK, json.dumps(result).encode(), "application/json")

        def log_message(self, format: str, *args) -> None:  # quiet
            pass

    return Handler


def serve(dataset_dir: str | Path, port: int = 8765, include_all: bool = False) -> ThreadingHTTPServer:
    app = ReviewApp(dataset_dir, include_all)
    return ThreadingHTTPServer(("127.0.0.1", port), make_handler(app))

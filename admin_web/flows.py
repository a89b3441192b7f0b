"""Flow editor: flows and versions, a form per node, the graph, publish, rollback, diff.

Edits change the flow's **draft** only; nothing reaches callers until someone with
``flows.publish`` presses Publish (the draft must validate).  Every change is audited with the
document before and after.
"""
from __future__ import annotations

import copy
import difflib
import json
import logging
import re
from typing import Any

from flask import (Blueprint, abort, flash, g, redirect, render_template, request, send_file,
                   url_for)

from admin_web import audit, db, flow_forms, flow_graph
from admin_web.security import require
from admin_web.services import FlowStore, WebServices

logger = logging.getLogger(__name__)

bp = Blueprint("flows", __name__, url_prefix="/flows")

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
NODE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _services() -> WebServices:
    from admin_web.app import services
    return services()


def flow_store() -> FlowStore:
    store = _services().flows
    if store is None:
        abort(503, "the flow store is not available")
    return store


def problems_of(document: dict[str, Any]) -> list[Any]:
    validate = _services().validate_flow
    return list(validate(document)) if validate else []


def working_copy(name: str) -> dict[str, Any]:
    """The draft, else the live version (an edit turns it into the draft)."""
    store = flow_store()
    try:
        return store.draft(name)
    except KeyError:
        latest = store.latest_versions().get(name)
        if latest is None:
            abort(404)
        return store.document(name, latest)


def save(name: str, before: dict[str, Any] | None, after: dict[str, Any], action: str) -> list[Any]:
    problems = list(flow_store().save_draft(name, after, g.user.username))
    session = db.get()
    audit.record(session, "flow", name, action, before, after,
                 f"{len(problems)} problem(s)" if problems else "valid")
    session.commit()
    return problems


# ----------------------------------------------------------------------------- pages


@bp.get("/")
@require("flows.view")
def index():
    store = flow_store()
    latest = store.latest_versions()
    rows = []
    for name in store.names():
        document = working_copy(name)
        rows.append({"name": name, "live": latest.get(name),
                     "problems": len(problems_of(document)),
                     "nodes": len(document.get("nodes") or {})})
    return render_template("flows/index.html", rows=rows, node_types=_node_types())


@bp.get("/<name>/")
@require("flows.view")
def edit(name: str):
    document = working_copy(name)
    problems = problems_of(document)
    per_node, flow_level = flow_graph.problems_by_node(document, problems)
    selected = request.args.get("node")
    nodes = document.get("nodes") or {}
    if selected not in nodes:
        selected = None
    node = nodes.get(selected) if selected else None
    return render_template(
        "flows/edit.html", name=name, document=document, problems=problems, per_node=per_node,
        flow_level=flow_level, selected=selected, node=node,
        fields=flow_forms.fields_for(node.get("type", "")) if node else (),
        values=flow_forms.to_form(node) if node else {},
        prompt_fields=flow_forms.prompt_fields(node) if node else [],
        graph=flow_graph.graph_data(document, per_node, selected),
        live=flow_store().latest_versions().get(name), node_types=_node_types(),
        can_listen=_services().render_prompt is not None)


def _node_types() -> list[str]:
    return list(_services().node_types or flow_forms.NODE_FORMS)


# ----------------------------------------------------------------------------- editing


@bp.post("/new")
@require("flows.edit")
def new():
    name = request.form.get("name", "").strip()
    if not NAME.fullmatch(name):
        flash("A flow name is 1-64 letters, digits, _ or -.", "error")
        return redirect(url_for("flows.index"))
    if name in flow_store().names():
        flash(f"Flow {name} exists already.", "error")
        return redirect(url_for("flows.index"))
    document = {"name": name, "start": "goodbye",
                "nodes": {"goodbye": {"type": "hangup", "prompt": "Goodbye."}}}
    save(name, None, document, "create")
    return redirect(url_for("flows.edit", name=name))


@bp.post("/<name>/nodes/<node_id>")
@require("flows.edit")
def save_node(name: str, node_id: str):
    before = working_copy(name)
    node = (before.get("nodes") or {}).get(node_id)
    if node is None:
        abort(404)
    try:
        updated = flow_forms.from_form(node.get("type", ""), request.form, keep=node)
    except flow_forms.FormError as exc:
        flash(f"Not saved: {exc}", "error")
        return redirect(url_for("flows.edit", name=name, node=node_id))
    after = copy.deepcopy(before)
    after["nodes"][node_id] = updated
    problems = save(name, before, after, "save_draft")
    _flash_result(node_id, problems)
    return redirect(url_for("flows.edit", name=name, node=node_id))


def _flash_result(node_id: str, problems: list[Any]) -> None:
    mine = [p for p in problems if p.node_id == node_id]
    if mine:
        flash(f"Draft saved; node {node_id} has {len(mine)} problem(s).", "error")
    elif problems:
        flash(f"Draft saved; the flow still has {len(problems)} problem(s).", "warning")
    else:
        flash("Draft saved: the flow is valid (not published yet).", "ok")


@bp.post("/<name>/nodes")
@require("flows.edit")
def add_node(name: str):
    node_id = request.form.get("node_id", "").strip()
    node_type = request.form.get("type", "")
    before = working_copy(name)
    if not NODE_ID.fullmatch(node_id) or node_id in (before.get("nodes") or {}):
        flash("A new node needs an unused id (letters, digits, _ . -).", "error")
        return redirect(url_for("flows.edit", name=name))
    if node_type not in _node_types():
        abort(400)
    after = copy.deepcopy(before)
    after.setdefault("nodes", {})[node_id] = {"type": node_type}
    save(name, before, after, "add_node")
    return redirect(url_for("flows.edit", name=name, node=node_id))


@bp.post("/<name>/nodes/<node_id>/delete")
@require("flows.edit")
def delete_node(name: str, node_id: str):
    before = working_copy(name)
    if node_id not in (before.get("nodes") or {}):
        abort(404)
    after = copy.deepcopy(before)
    del after["nodes"][node_id]
    problems = save(name, before, after, "delete_node")
    flash(f"Node {node_id} deleted from the draft"
          + (f"; {len(problems)} problem(s) left." if problems else "."), "ok")
    return redirect(url_for("flows.edit", name=name))


@bp.post("/<name>/settings")
@require("flows.edit")
def settings(name: str):
    before = working_copy(name)
    after = copy.deepcopy(before)
    for key in ("start", "language", "timezone", "description"):
        value = request.form.get(key, "").strip()
        if value:
            after[key] = value
        else:
            after.pop(key, None)
    save(name, before, after, "save_draft")
    return redirect(url_for("flows.edit", name=name))


# ----------------------------------------------------------------------------- publishing


@bp.post("/<name>/publish")
@require("flows.publish")
def publish(name: str):
    try:
        version = publish_draft(name, request.form.get("comment", "").strip())
    except KeyError:
        flash("There is no draft to publish.", "error")
        return redirect(url_for("flows.edit", name=name))
    except ValueError as exc:
        flash(f"Not published: {len(getattr(exc, 'errors', []))} problem(s) in the draft.", "error")
        return redirect(url_for("flows.edit", name=name))
    flash(f"Version {version} published: serve takes it within 2 s.", "ok")
    return redirect(url_for("flows.versions", name=name))


@bp.post("/<name>/rollback/<int:version>")
@require("flows.publish")
def rollback(name: str, version: int):
    try:
        new_version = rollback_to(name, version, request.form.get("comment", "").strip())
    except KeyError:
        abort(404)
    flash(f"Version {version} is live again as version {new_version}.", "ok")
    return redirect(url_for("flows.versions", name=name))


def publish_draft(name: str, comment: str) -> int:
    """Publish the draft (KeyError: none; ValueError with ``errors``: invalid); audited."""
    store = flow_store()
    before = store.latest_versions().get(name)
    version = store.publish(name, g.user.username, comment)
    _audit_version(name, "publish", before, version, comment)
    return version


def rollback_to(name: str, version: int, comment: str) -> int:
    """Publish ``version`` again as a new version (KeyError: no such version); audited."""
    store = flow_store()
    before = store.latest_versions().get(name)
    new_version = store.rollback(name, version, g.user.username, comment)
    _audit_version(name, "rollback", before, new_version, f"to version {version}")
    return new_version


def _audit_version(name: str, action: str, before: int | None, after: int, comment: str) -> None:
    store = flow_store()
    session = db.get()
    audit.record(session, "flow", name, action,
                 {"version": before, "document": store.document(name, before)} if before else None,
                 {"version": after, "document": store.document(name, after)}, comment)
    session.commit()


@bp.get("/<name>/versions")
@require("flows.view")
def versions(name: str):
    rows = list(reversed(flow_store().versions(name)))
    try:
        flow_store().draft(name)
        has_draft = True
    except KeyError:
        has_draft = False
    return render_template("flows/versions.html", name=name, rows=rows, has_draft=has_draft)


@bp.get("/<name>/versions/<int:version>")
@require("flows.view")
def version(name: str, version: int):
    try:
        document = flow_store().document(name, version)
    except KeyError:
        abort(404)
    return render_template("flows/version.html", name=name, version=version,
                           text=json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True))


@bp.get("/<name>/diff")
@require("flows.view")
def diff(name: str):
    a, b = request.args.get("a", ""), request.args.get("b", "draft")
    lines = list(difflib.unified_diff(_lines(name, a), _lines(name, b), f"{name} {_which(a)}",
                                      f"{name} {_which(b)}", n=3, lineterm=""))
    return render_template("flows/diff.html", name=name, a=a, b=b, lines=lines)


def _which(ref: str) -> str:
    return "draft" if ref == "draft" else f"version {ref}"


def _lines(name: str, ref: str) -> list[str]:
    try:
        document = flow_store().draft(name) if ref == "draft" else flow_store().document(name, int(ref))
    except (KeyError, ValueError):
        abort(404)
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True).splitlines()


# ----------------------------------------------------------------------------- listening


@bp.get("/<name>/nodes/<node_id>/audio/<field>")
@require("flows.view")
def audio(name: str, node_id: str, field: str):
    render = _services().render_prompt
    document = working_copy(name)
    node = (document.get("nodes") or {}).get(node_id)
    if render is None or node is None or field not in flow_forms.prompt_fields(node):
        abort(404)
    language = request.args.get("lang") or document.get("language")
    text = flow_forms.prompt_text(node.get(field), language)
    if not text:
        abort(404)
    path = render(text, language)
    return send_file(path, mimetype="audio/wav", max_age=3600)

"""The web dashboard at ``/ui/``: server-rendered pages, no script from anywhere else, no CDN.

Sign in with an API token (kept in an HttpOnly, SameSite=Strict cookie scoped to /ui); then
the tenant's certifications (filter by verdict and status, search by id, model, dataset or
standard), one certification (the report's sections: criteria, curves, adversarial examples,
per-class tables, attributions; live progress while it runs), a comparison of two
certifications metric by metric, and the standards catalogue. Pages read the same service
functions as the v1 API, so a tenant sees exactly what its token sees there.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service import certifications, standards_catalog
from service.api.reports import MEDIA_TYPES, _report
from service.api.ui_compare import compare_page
from service.auth import tenant_for_token
from service.errors import ApiError
from verifiers.examples import to_npz
from verifiers.report.gallery import CSS as GALLERY_CSS
from verifiers.report.html import render_body
from verifiers.report.style import CSS, verdict_colors

COOKIE = "rg_ui_token"
router = APIRouter(prefix="/ui", include_in_schema=False)

UI_CSS = """
nav.top { display:flex; gap: 18px; align-items:center; background:#1f2328; color:#fff;
  padding: 10px 24px; }
nav.top a { color:#fff; text-decoration:none; font-weight:600; }
nav.top .brand { font-size: 17px; margin-right: 12px; }
nav.top form { margin-left: auto; }
nav.top button { background:none; border:1px solid #59636e; color:#fff; border-radius:6px;
  padding: 3px 10px; cursor:pointer; }
form.filters { display:flex; gap: 10px; flex-wrap: wrap; align-items:end; margin-bottom: 12px; }
form.filters label { font-size: 12px; color: var(--muted); display:flex; flex-direction:column; }
input, select, button.primary { font: inherit; padding: 5px 8px; border:1px solid var(--line);
  border-radius: 6px; }
button.primary { background:#0969da; color:#fff; border-color:#0969da; cursor:pointer; }
.progress { height: 14px; background: var(--panel); border-radius: 7px; overflow:hidden;
  border: 1px solid var(--line); }
.progress div { height: 100%; background: #0969da; }
.links a { margin-right: 14px; }
.error { color: #cf222e; }
td.delta-better { color: #1a7f37; font-weight: 600; }
td.delta-worse { color: #cf222e; font-weight: 600; }
tr.changed td { background: #fff8c5; }
"""


# -- pages ------------------------------------------------------------------------------------

def _page(title: str, body: str, *, signed_in: bool = True, refresh: int | None = None
          ) -> HTMLResponse:
    nav = ('<nav class="top"><a class="brand" href="/ui/certifications">Robustgate</a>'
           '<a href="/ui/certifications">Certifications</a>'
           '<a href="/ui/standards">Standards</a><a href="/docs">API</a>'
           '<form method="post" action="/ui/signout"><button id="signout">Sign out</button>'
           "</form></nav>") if signed_in else ""
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{meta}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)} · Robustgate</title>"
            f"<style>{CSS}{GALLERY_CSS}{UI_CSS}</style></head><body>{nav}<main>{body}</main>"
            "</body></html>")
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _pill(label: str | None) -> str:
    text = label or "-"
    strong, light = verdict_colors(text)
    return (f'<span class="pill" data-verdict="{escape(text)}" '
            f'style="color:{strong};background:{light}">{escape(text)}</span>')


def _tenant(request: Request) -> int | None:
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    with request.app.state.services.db.session() as s:
        tenant = tenant_for_token(s, token)
        return tenant.id if tenant is not None else None


def _signin_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/signin?next={quote(target)}", status_code=303)


def _safe_next(target: str) -> str:
    return target if target.startswith("/ui/") and not target.startswith("//") \
        else "/ui/certifications"


@router.get("/")
@router.get("")
def home(request: Request) -> Response:
    if _tenant(request) is None:
        return RedirectResponse("/ui/signin", status_code=303)
    return RedirectResponse("/ui/certifications", status_code=303)


@router.get("/signin")
def signin_form(request: Request, next: str = "/ui/certifications", error: str = "") -> Response:
    message = f'<p class="error" id="signin-error">{escape(error)}</p>' if error else ""
    body = ('<section style="max-width:520px;margin:60px auto"><h1>Sign in</h1>'
            '<p class="reason">Paste an API token (<code>robustgate token create --tenant '
            "NAME</code>). It is kept in a cookie for this site only.</p>"
            f'{message}<form method="post" action="/ui/signin">'
            f'<input type="hidden" name="next" value="{escape(_safe_next(next))}">'
            '<p><input id="token" name="token" type="password" autocomplete="off" '
            'placeholder="rg_..." style="width:100%" required></p>'
            '<button class="primary" id="signin" type="submit">Sign in</button></form>'
            "</section>")
    return _page("Sign in", body, signed_in=False)


@router.post("/signin")
def signin(request: Request, token: str = Form(...),
           next: str = Form("/ui/certifications")) -> Response:
    token = token.strip()
    with request.app.state.services.db.session() as s:
        valid = tenant_for_token(s, token) is not None
    if not valid:
        return RedirectResponse("/ui/signin?" + urlencode(
            {"error": "that token is not valid (revoked, or never made)",
             "next": _safe_next(next)}), status_code=303)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui",
                        secure=request.url.scheme == "https")
    return response


@router.post("/signout")
def signout() -> Response:
    response = RedirectResponse("/ui/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


def _matches(item: dict[str, Any], q: str) -> bool:
    if not q:
        return True
    hay = " ".join(str(v) for v in (
        item["id"], item["standard"]["name"], f"{item['standard']['name']}@"
        f"{item['standard']['version']}", item["model"]["sha256"], item["model"]["filename"],
        item["dataset"]["filename"], item["dataset"]["sha256"])).lower()
    return all(word in hay for word in q.lower().split())


@router.get("/certifications")
def certification_list(request: Request, q: str = "", verdict: str = "", status: str = ""
                       ) -> Response:
    tenant = _tenant(request)
    if tenant is None:
        return _signin_redirect(request)
    svc = request.app.state.services
    items, offset = [], 0
    while True:  # the tenant's whole history, newest first (pages of 200)
        page = certifications.list_for(svc, tenant, 200, offset)
        items += page["items"]
        if page["next_offset"] is None or len(items) >= 2000:
            break
        offset = page["next_offset"]
    shown = [i for i in items if _matches(i, q)
             and (not verdict or (i["verdict"] or "-") == verdict)
             and (not status or i["status"] == status)]

    def option(name: str, value: str, current: str) -> str:
        sel = " selected" if value == current else ""
        return f'<option value="{escape(value)}"{sel}>{escape(name)}</option>'

    verdicts = "".join(option(v or "any", v, verdict)
                       for v in ("", "PASS", "FAIL", "INCONCLUSIVE"))
    statuses = "".join(option(v or "any", v, status) for v in (
        "", "queued", "running", "succeeded", "errored", "cancelled"))
    rows = []
    for i in shown:
        std = i["standard"]
        progress = "" if i["status"] in certifications.FINISHED else \
            f' <span class="reason">{i["progress"] * 100:.0f}% {escape(i["stage"])}</span>'
        rows.append(
            f'<tr data-id="{escape(i["id"])}"><td><input type="checkbox" name="id" '
            f'value="{escape(i["id"])}" aria-label="select {escape(i["id"])}"></td>'
            f'<td><a class="open" href="/ui/certifications/{escape(i["id"])}"><code>'
            f'{escape(i["id"][:8])}</code></a></td><td>{_pill(i["verdict"])}</td>'
            f'<td>{escape(i["status"])}{progress}</td>'
            f'<td>{escape(i["model"]["filename"])} <code class="reason">'
            f'{escape(i["model"]["sha256"][:10])}</code></td>'
            f'<td>{escape(std["name"])} v{escape(str(std["version"]))}</td>'
            f'<td>{escape(i["dataset"]["filename"])} ({i["dataset"]["n_samples"]})</td>'
            f'<td class="num">{escape((i["created_at"] or "")[:19].replace("T", " "))}</td></tr>')
    table = (f'<form method="get" action="/ui/compare" id="compare-form"><table id="list">'
             "<thead><tr><th></th><th>id</th><th>verdict</th><th>status</th><th>model</th>"
             '<th>standard</th><th>data</th><th class="num">created (UTC)</th></tr></thead>'
             f"<tbody>{''.join(rows)}</tbody></table>"
             '<p><button class="primary" id="compare" type="submit">Compare selected (two)'
             "</button></p></form>") if rows else \
        '<p class="reason" id="empty">No certification matches.</p>'
    body = ('<section><h1>Certifications</h1><form class="filters" method="get">'
            f'<label>search<input name="q" id="q" value="{escape(q)}" '
            'placeholder="id, model, data or standard"></label>'
            f'<label>verdict<select name="verdict" id="verdict">{verdicts}</select></label>'
            f'<label>status<select name="status" id="status">{statuses}</select></label>'
            '<button class="primary" type="submit" id="filter">Filter</button></form>'
            f'<p class="reason">{len(shown)} of {len(items)} shown.</p>{table}</section>')
    return _page("Certifications", body)


@router.get("/certifications/{job_id}")
def certification_page(request: Request, job_id: str) -> Response:
    tenant = _tenant(request)
    if tenant is None:
        return _signin_redirect(request)
    svc = request.app.state.services
    try:
        job = certifications.get(svc, tenant, job_id)
    except ApiError as err:
        return _page("Not found", f'<section><h1>Not found</h1><p>{escape(err.message)}</p>'
                     "</section>")
    std = job["standard"]
    head = (f'<section id="job" data-status="{escape(job["status"])}"><h1>Certification '
            f'<code>{escape(job_id)}</code></h1><p class="subtitle">model '
            f'{escape(job["model"]["filename"])} <code>{escape(job["model"]["sha256"][:16])}'
            f'</code> · standard {escape(std["name"])} v{escape(str(std["version"]))} · data '
            f'{escape(job["dataset"]["filename"])} · created '
            f'{escape((job["created_at"] or "")[:19])}</p>')
    if job["status"] not in certifications.FINISHED:
        pct = max(0.0, min(1.0, float(job["progress"] or 0.0))) * 100
        eta = job.get("estimate") or {}
        left = "" if eta.get("seconds_left") is None else (
            f' · <span id="eta">about {eta["seconds_left"]:.0f} s left for the '
            f'{escape(eta["stage"])}</span>')
        body = (f"{head}<p>Status <b id=\"status\">{escape(job['status'])}</b> · stage "
                f'<b id="stage">{escape(job["stage"] or "-")}</b> · {pct:.0f}%{left}</p>'
                f'<div class="progress" id="progress" data-progress="{pct:.1f}"><div '
                f'style="width:{pct:.1f}%"></div></div><p class="reason">This page refreshes '
                "every 2 seconds until the job finishes.</p></section>")
        return _page(f"Certification {job_id[:8]}", body, refresh=2)
    if job["status"] != "succeeded":
        body = (f"{head}<p>Status <b id=\"status\">{escape(job['status'])}</b></p>"
                f'<p class="error">{escape(job.get("error") or "")}</p></section>')
        return _page(f"Certification {job_id[:8]}", body)
    card = certifications.scorecard(svc, tenant, job_id)
    base = f"/ui/certifications/{escape(job_id)}"
    links = "".join(f'<a href="{base}/files/{name}">{label}</a>' for name, label in (
        ("report.html", "HTML report"), ("report.md", "Markdown"), ("report.xml", "JUnit"),
        ("report.svg", "badge"), ("scorecard.json", "scorecard"),
        ("adversarial.npz", "adversarial examples (.npz)")))
    others = [i for i in certifications.list_for(svc, tenant, 50, 0)["items"]
              if i["id"] != job_id and i["status"] == "succeeded"
              and i["standard"]["name"] == std["name"]]
    compare = "" if not others else (
        f'<form method="get" action="/ui/compare" class="filters"><input type="hidden" '
        f'name="id" value="{escape(job_id)}"><label>compare with<select name="id" '
        f'id="compare-with">' + "".join(
            f'<option value="{escape(o["id"])}">{escape(o["id"][:8])} · '
            f'{escape(o["model"]["filename"])} · {escape(o["verdict"] or "-")}</option>'
            for o in others) + '</select></label><button class="primary" type="submit">'
        "Compare</button></form>")
    body = (f'{head}<p class="links">{links}</p>{compare}</section>'
            f'<div id="report">{render_body(card)}</div>')
    return _page(f"Certification {job_id[:8]}", body)


@router.get("/certifications/{job_id}/files/{name}")
def certification_file(request: Request, job_id: str, name: str) -> Response:
    """The v1 downloads, for a browser that signs in with the cookie."""
    tenant = _tenant(request)
    if tenant is None:
        return _signin_redirect(request)
    request.state.tenant_id = tenant
    if name.startswith("report.") and name.split(".", 1)[1] in MEDIA_TYPES:
        return _report(request, job_id, name.split(".", 1)[1])
    svc = request.app.state.services
    card = certifications.scorecard(svc, tenant, job_id)
    if name == "scorecard.json":
        return Response(json.dumps(card, indent=2, sort_keys=True),
                        media_type="application/json")
    if name == "adversarial.npz" and (data := to_npz(card)) is not None:
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": 'attachment; filename="adversarial.npz"'})
    raise ApiError(404, "not_found", f"no file {name!r} for certification {job_id}")


@router.get("/compare")
def compare(request: Request, id: list[str] = Query(default=[])) -> Response:  # noqa: A002
    tenant = _tenant(request)
    if tenant is None:
        return _signin_redirect(request)
    if len(id) != 2 or id[0] == id[1]:
        return _page("Compare", '<section><h1>Compare</h1><p class="error" id="compare-error">'
                     "Select exactly two different certifications.</p></section>")
    svc = request.app.state.services
    try:
        # A is the older, B the newer: "model v1 vs v2", whatever order they were picked in.
        jobs = sorted((certifications.get(svc, tenant, j) for j in id),
                      key=lambda j: (j["created_at"] or "", j["id"]))
        cards = [certifications.scorecard(svc, tenant, j["id"]) for j in jobs]
    except ApiError as err:
        return _page("Compare", f'<section><h1>Compare</h1><p class="error" '
                     f'id="compare-error">{escape(err.message)}</p></section>')
    return _page("Compare", compare_page(jobs, cards))


@router.get("/standards")
def standards(request: Request) -> Response:
    tenant = _tenant(request)
    if tenant is None:
        return _signin_redirect(request)
    rows = []
    for std in standards_catalog.list_visible(request.app.state.services.db, tenant):
        crit = "".join(
            f'<li><code>{escape(c["metric"])}</code> {escape(c["op"])} '
            f'{escape(str(c["threshold"]))} '
            f'{"" if c["severity"] == "required" else "<span class=advisory>advisory</span>"}'
            "</li>" for c in std["criteria"])
        rows.append(
            f'<details class="check" data-standard="{escape(std["name"])}"><summary><h3>'
            f'{escape(std["name"])} v{escape(str(std["version"]))}</h3><span class="reason">'
            f'{escape(std["norm"])} eps {escape(", ".join(std["eps"]))} · '
            f'{len(std["criteria"])} criteria · '
            f'{"built-in" if std["builtin"] else "yours"}</span></summary>'
            f'<p>{escape(std["description"])}</p><ul>{crit}</ul></details>')
    body = ('<section><h1>Standards</h1><p class="reason">Built-in standards, then your own '
            "(<code>POST /v1/standards</code>). Required criteria decide the verdict; "
            f"advisory ones are reported.</p>{''.join(rows)}</section>")
    return _page("Standards", body)

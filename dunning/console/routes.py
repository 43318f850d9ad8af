"""Every console route, and its two static files (no CDN, no build step)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from starlette.responses import FileResponse

from dunning.console import (
    alert_routes,
    case_routes,
    editor_routes,
    maintenance_routes,
    policy_routes,
    session_routes,
    template_routes,
)
from dunning.console.pages import STATIC

router = APIRouter(include_in_schema=False)
router.include_router(session_routes.router)
router.include_router(case_routes.router)
router.include_router(editor_routes.router)  # /new before /{policy_id}
router.include_router(policy_routes.router)
router.include_router(template_routes.router)
router.include_router(alert_routes.router)
router.include_router(maintenance_routes.router)

_STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}


@router.get("/console/static/{name}")
def static(name: str) -> FileResponse:
    """The stylesheet and the small progressive-enhancement script."""
    if name not in _STATIC_FILES:
        raise HTTPException(404, "no such file")
    return FileResponse(
        STATIC / name,
        media_type=_STATIC_FILES[name],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )

"""The audit service's HTTP route beside GraphQL: download an export, report or archive file with
the same bearer token that made it (streamed from disk, never loaded whole)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from opsconductor_audit import service
from opsconductor_audit.settings import Settings
from opsconductor_shared.app import Runtime
from opsconductor_shared.auth import AuthenticationError, bearer_token
from opsconductor_shared.errors import NotFoundError

EXPORT = "audit:export"
ADMIN = "audit:admin"
MEDIA = {"NDJSON": "application/x-ndjson", "CSV": "text/csv", "JSON": "application/json"}


def download_url(settings: Settings, export_id: str) -> str:
    return f"{settings.public_url or settings.base_url}/audit/files/{export_id}"


def routes(runtime: Runtime[Settings, service.Deps]) -> list[Route]:
    async def download(request: Request) -> Response:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return JSONResponse({"message": "authentication required"}, status_code=401)
        try:
            identity = await runtime.verifier.verify(token)
        except AuthenticationError as exc:
            return JSONResponse({"message": str(exc)}, status_code=401)
        if not identity.has(EXPORT):
            return JSONResponse({"message": f"permission '{EXPORT}' required"}, status_code=403)
        export_id = str(request.path_params["export_id"])
        try:
            row = await service.get_export(
                export_id=export_id, owner_id=None if identity.has(ADMIN) else identity.subject
            )
        except NotFoundError as exc:
            return JSONResponse({"message": exc.message}, status_code=404)
        suffix = row.path.rsplit(".", 1)[-1]
        return FileResponse(
            row.path,
            media_type=MEDIA.get(row.format, "application/octet-stream"),
            filename=f"audit-{row.kind.lower()}-{row.id}.{suffix}",
            headers={"x-content-sha256": row.sha256},
        )

    return [Route("/audit/files/{export_id}", download, methods=["GET"])]

"""HTTP routes of the targets service that are not GraphQL: the engine's credential resolver."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opsconductor_shared.logging import get_logger
from opsconductor_targets import service
from opsconductor_targets.errors import GrantRejected

log = get_logger("opsconductor.targets")


def _reject(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status, headers={"cache-control": "no-store"})


def credentials_route(deps: service.Deps) -> Route:
    """``POST /internal/credentials``: the engine's resolver. Not routed through the gateway (which
    proxies /graphql only). Never log the body.

    - `POST {grant, targetIds: [...]}` (what pools send, once per batch) ->
      `{"credentials": {id: {username, password, privateKey, passphrase, ...}}, "refused": {id: message}}`;
    - `POST {grant, targetId}` -> that one credential object, or 403 `{message}`.

    An invalid grant is 403 `{message}` either way.
    """
    limit = deps.settings.max_grant_targets

    async def resolve_credentials(request: Request) -> Response:
        try:
            body = await request.json()
            grant = body["grant"]
            many = body.get("targetIds")
            ids = many if many is not None else [body["targetId"]]
            if (
                not isinstance(grant, str)
                or not grant
                or not isinstance(ids, list)
                or not ids
                or not all(isinstance(i, str) and i for i in ids)
            ):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            return _reject(
                400, 'expected JSON {"grant": "...", "targetIds": ["..."]} or {"grant", "targetId"}'
            )
        if len(ids) > limit:
            return _reject(413, f"at most {limit} targets per request")
        try:
            answers, refused = await service.resolve_many(deps=deps, grant=grant, target_ids=ids)
        except GrantRejected as exc:
            log.warning("credential request refused", targets=len(ids), reason=exc.message)
            return _reject(403, exc.message)
        for target_id, reason in refused.items():
            log.warning("credential request refused", target_id=target_id[:64], reason=reason)
        if many is None:
            if ids[0] in refused:
                return _reject(403, refused[ids[0]])
            return JSONResponse(answers[ids[0]], headers={"cache-control": "no-store"})
        return JSONResponse(
            {"credentials": answers, "refused": refused}, headers={"cache-control": "no-store"}
        )

    return Route("/internal/credentials", resolve_credentials, methods=["POST"])

"""Routing a request to discovery, a resource verb, or a pod's log, after
authentication and authorization."""

from __future__ import annotations

from typing import Any

from . import crud, deletion, discovery, errors, listing, openapi, podlog, routes, tables, watch
from .auth import Authenticator, User
from .cluster import Cluster
from .request import Request, Response
from .resources import NAMESPACES, ResourceType

JsonObj = dict[str, Any]

PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


class Api:
    def __init__(self, cluster: Cluster, auth: Authenticator, server_address: str) -> None:
        self.cluster = cluster
        self.auth = auth
        self.server_address = server_address

    def handle(self, req: Request) -> tuple[Response, User | None]:
        user: User | None = None
        try:
            if req.path in PUBLIC_PATHS:
                return self._public(req.path), None
            user = self.auth.authenticate(req.headers.get("authorization"))
            return self._authenticated(req, user), user
        except errors.ApiError as err:
            return Response.error(err), user

    def _public(self, path: str) -> Response:
        if path == "/version":
            return Response.json(200, discovery.VERSION)
        return Response(200, b"ok", "text/plain; charset=utf-8")

    def _authenticated(self, req: Request, user: User) -> Response:
        if req.method == "GET":
            doc = discovery.document(req.path.rstrip("/"), self.server_address)
            if doc is None:
                doc = openapi.document(req.path.rstrip("/"))
            if doc is not None:
                return Response.json(200, doc)
        route = routes.parse(req.path)
        if route is None:
            raise errors.path_not_found()
        watching = req.flag("watch")
        verb = routes.verb(req.method, route, watching)
        resource = (
            f"{route.rt.plural}/{route.subresource}" if route.subresource else route.rt.plural
        )
        if not self.auth.allowed(user, verb, route.rt.group, resource, route.namespace):
            raise errors.forbidden(
                route.rt, route.name, user.name, verb, route.subresource, route.namespace
            )
        return self._resource(req, route, verb)

    def _resource(self, req: Request, route: routes.ResourcePath, verb: str) -> Response:
        cluster, rt, ns, name, sub = (
            self.cluster,
            route.rt,
            route.namespace,
            route.name,
            route.subresource,
        )
        dry_run = req.param("dryRun") == "All"
        if sub == "log":
            return podlog.read(cluster, ns, name, req)
        if verb in ("list", "watch"):
            match = listing.Filter(rt, req)
            if verb == "watch":
                return Response(
                    200,
                    b"",
                    stream=watch.stream(
                        cluster,
                        rt,
                        ns,
                        name,
                        match,
                        req.param("resourceVersion"),
                        req.int_param("timeoutSeconds"),
                    ),
                )
            doc = listing.list_objects(cluster, rt, ns, req)
            return self._maybe_table(req, rt, doc)
        if verb == "get":
            obj = crud.get(cluster, rt, ns, name)
            return self._maybe_table(req, rt, obj)
        if verb == "create":
            if name:
                raise errors.method_not_allowed()
            return Response.json(201, crud.create(cluster, rt, ns, req.json(), dry_run))
        if verb == "update":
            return Response.json(200, crud.update(cluster, rt, ns, name, req.json(), sub, dry_run))
        if verb == "patch":
            content_type = req.headers.get("content-type", "")
            obj = crud.patch_object(cluster, rt, ns, name, content_type, req.json(), sub, dry_run)
            return Response.json(200, obj)
        if verb == "delete":
            options = deletion.DeleteOptions.read(
                req.json(), req.param("propagationPolicy"), req.int_param("gracePeriodSeconds")
            )
            body, headers = deletion.delete(cluster, rt, ns, name, options, dry_run)
            return Response.json(200, body, headers)
        return self._delete_collection(req, route, dry_run)

    def _delete_collection(
        self, req: Request, route: routes.ResourcePath, dry_run: bool
    ) -> Response:
        rt = route.rt
        if rt is NAMESPACES:
            raise errors.method_not_allowed()
        match = listing.Filter(rt, req)
        options = deletion.DeleteOptions.read(
            req.json(), req.param("propagationPolicy"), req.int_param("gracePeriodSeconds")
        )
        items, _ = self.cluster.store.list(rt, route.namespace or None)
        deleted = []
        headers: dict[str, str] = {}
        for obj in items:
            if not match(obj):
                continue
            meta = obj["metadata"]
            try:
                answer, headers = deletion.delete(
                    self.cluster, rt, meta.get("namespace", ""), meta["name"], options, dry_run
                )
            except errors.ApiError as err:
                if err.code == 404:
                    continue
                raise
            deleted.append(listing.bare(answer if answer.get("kind") == rt.kind else obj))
        doc = {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self.cluster.store.rv)},
            "items": deleted,
        }
        return Response.json(200, doc, headers)

    def _maybe_table(self, req: Request, rt: ResourceType, doc: JsonObj) -> Response:
        if req.accepts_table():
            return Response.json(200, tables.table(rt, doc, req.param("includeObject")))
        return Response.json(200, doc)

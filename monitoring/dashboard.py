"""The Grafana dashboard shipped in the package: export it, or push it to a Grafana server."""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

DASHBOARD = "dashboards/appliance.json"


class DashboardPushError(OSError):
    """Grafana could not be reached or refused the dashboard."""


def dashboard_json() -> dict[str, Any]:
    """The dashboard model (Grafana schemaVersion 39; Prometheus datasource chosen by ``$datasource``)."""
    return json.loads(resources.files("monitoring").joinpath(DASHBOARD).read_text())


def export(path: str | os.PathLike[str] | None = None) -> str:
    """Returns the dashboard JSON text and writes it to ``path`` when given (atomically)."""
    text = json.dumps(dashboard_json(), indent=2) + "\n"
    if path is not None:
        path = os.fspath(path)
        if os.path.isdir(path):
            raise ValueError(f"dashboard path {path} is a directory; name a file, e.g. {path}/appliance.json")
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    return text


def push(
    url: str,
    *,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    folder_uid: str | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Uploads the dashboard to Grafana at ``url``, replacing an older version; returns Grafana's answer.

    Authenticates with an API/service-account ``token``, or ``user`` and ``password``.
    """
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException

    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    if token is not None and (user is not None or password is not None):
        raise ValueError("pass either --token or --user and --password, not both")
    if token is None and (user is None or password is None):
        raise ValueError("pass --token, or both --user and --password")
    credential: Any = token if token is not None else (user, password)
    api = GrafanaApi.from_url(url, credential=credential, timeout=timeout)
    payload: dict[str, Any] = {"dashboard": {**dashboard_json(), "id": None}, "overwrite": True,
                               "message": "appliance dashboard push"}
    if folder_uid is not None:
        payload["folderUid"] = folder_uid
    try:
        return api.dashboard.update_dashboard(payload)
    except GrafanaException as exc:
        raise DashboardPushError(f"Grafana at {url} refused the dashboard: {exc}") from exc
    except OSError as exc:  # niquests' connection, TLS and timeout errors are OSErrors
        raise DashboardPushError(f"cannot reach Grafana at {url}: {_root_reason(exc)}") from exc


def _root_reason(exc: BaseException) -> str:
    """The innermost OS-level reason (e.g. "Connection refused") instead of the HTTP stack's layers."""
    reason = str(exc).split("\n")[0] or type(exc).__name__
    seen = 0
    layer: BaseException | None = exc
    while layer is not None and seen < 20:
        if isinstance(layer, OSError) and layer.strerror:
            return layer.strerror
        layer, seen = layer.__cause__ or layer.__context__, seen + 1
    return reason

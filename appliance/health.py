"""`appliance health`: the container health check — is this rank's /metrics serving?"""

from __future__ import annotations

import urllib.error
import urllib.request


def check(host: str, port: int, timeout: float) -> str:
    """Returns a one-line status; raises OSError with one sentence when unhealthy."""
    url = f"http://{host}:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"no metrics at {url}: {reason}") from None
    if "appliance_build_info" not in body:
        raise OSError(f"{url} answers but serves no appliance metrics")
    return f"healthy: {url} serves appliance metrics"

"""SMART auth figures: client-assertion signing rate per algorithm, and token round trips and
cached-token overhead against the local sandbox. Prints figures; asserts nothing."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from fhir_assets.fhir import ClientCredentialsTokenSource, load_private_key
from fhir_assets.fhir.keys import generate_private_key
from fhir_assets.sandbox import Sandbox

SIGNINGS = 200
FETCHES = 20
CACHED = 100_000


def signing_rate(alg: str) -> float:
    tokens = ClientCredentialsTokenSource(
        token_url="https://ehr.example/token",  # noqa: S106 (a URL, not a password)
        client_id="bench",
        private_key=generate_private_key(alg),
        scope="system/Patient.rs",
    )
    started = time.perf_counter()
    for _ in range(SIGNINGS):
        tokens.assertion()
    return SIGNINGS / (time.perf_counter() - started)


def main() -> None:
    for alg in ("RS384", "ES384"):
        print(f"assertion signing {alg}: {signing_rate(alg):,.0f}/s")
    home = Path(".fhir-assets")
    with Sandbox(home=home) as server:
        tokens = ClientCredentialsTokenSource(
            token_url=server.token_url,
            client_id=server.client.client_id,
            private_key=load_private_key(server.client.private_key_path),
            scope="system/Patient.rs",
        )
        times = []
        for _ in range(FETCHES):
            started = time.perf_counter()
            tokens.token(force_refresh=True)
            times.append(time.perf_counter() - started)
        print(
            f"token fetch (sandbox, RS384): median {statistics.median(times) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms over {FETCHES}"
        )
        started = time.perf_counter()
        for _ in range(CACHED):
            tokens.token()
        per_call = (time.perf_counter() - started) / CACHED
        print(f"cached token lookup: {per_call * 1e6:.2f} µs per request")


if __name__ == "__main__":
    main()

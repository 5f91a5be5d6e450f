"""The sandbox's server process: sekmet's app with the operations fhir-assets needs registered.

``sekmet serve`` cannot add operations, so the sandbox runs ``python -m fhir_assets.sandbox.app
--config settings.yaml``: sekmet's own app factory, then ``FhirService.register_operation`` for
``QuestionnaireResponse/$extract`` (``questionnaires.py``), then uvicorn as ``sekmet serve`` runs
it. (sekmet answers ``$validate`` and ``Patient/$everything`` by itself.)
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from . import questionnaires


def extract_operation(svc: Any, rtype: str | None, rid: str | None, params: Any, body: Any,
                      ctx: Any) -> Any:  # fmt: skip
    """sekmet operation handler: ``QuestionnaireResponse/{id}/$extract`` (or type level with
    a ``questionnaire-response`` parameter)."""
    from sekmet.fhir.common import FhirError
    from sekmet.fhir.service import Result

    response = svc.store.read("QuestionnaireResponse", rid) if rid else None
    if response is None and isinstance(body, dict):
        for parameter in body.get("parameter") or ():
            if parameter.get("name") == "questionnaire-response":
                response = parameter.get("resource")
    if not isinstance(response, dict):
        raise FhirError(404, "QuestionnaireResponse not found", "not-found")
    wanted = str(response.get("questionnaire", ""))
    found = svc.search("Questionnaire", [("url", wanted)]).body  # checked again: url may be ignored
    matches = [
        e["resource"]
        for e in (found or {}).get("entry") or ()
        if (e.get("resource") or {}).get("url") == wanted
    ]
    if not matches:
        raise FhirError(422, "the response's Questionnaire is not on this server: cannot extract",
                        "processing")  # fmt: skip
    entries = [
        {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
        for r in questionnaires.extracted(response, matches[0])
    ]
    return Result(200, {"resourceType": "Bundle", "type": "transaction", "entry": entries})


def main() -> None:
    """Serve sekmet with the extra operations (arguments as ``sekmet serve --config``)."""
    import uvicorn
    from sekmet.config import load_settings
    from sekmet.main import create_app

    parser = argparse.ArgumentParser(prog="fhir_assets.sandbox.app")
    parser.add_argument("--config", required=True)
    config = parser.parse_args().config
    os.environ["SEKMET_CONFIG"] = config
    settings = load_settings(config)
    app = create_app(settings)
    app.state.ctx.service.register_operation("QuestionnaireResponse", "$extract", extract_operation)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()

"""A local FHIR R4 sandbox: the ``sekmet-fhir`` server seeded with deterministic synthetic data.

Needs the ``sandbox`` extra (``pip install 'fhir-assets[sandbox]'``). Used by ``make demo``, by the
tests and by ``fhir-assets sandbox``, so anyone can try the product without an EHR account.
"""

from .server import Sandbox, SandboxClient

__all__ = ["Sandbox", "SandboxClient"]

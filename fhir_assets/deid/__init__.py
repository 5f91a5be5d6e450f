"""De-identification inside the warehouse: ``fhir.<view>`` -> ``fhir_deid.<view>`` by SQL, with a
policy per column (see docs/deid.md)."""

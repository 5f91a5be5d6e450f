"""The real-browser check of the Dagster UI after the demo (``make ui-check``)."""

"""The stages the CLI and the DAG run, in order."""

"""treatment-marts: turn monthly drug and alcohol treatment extracts into publishable, disclosure-controlled marts.

The package never imports Airflow: every stage runs the same from the CLI, a test, a notebook or a DAG task.
"""

__version__ = "0.7.0"

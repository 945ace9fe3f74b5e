# The Airflow image for docker-compose: the official Airflow 3.3 image plus treatment-marts.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml README.md /opt/treatment-marts/
COPY --chown=airflow:0 include /opt/treatment-marts/include
COPY --chown=airflow:0 expectations /opt/treatment-marts/expectations
RUN pip install --no-cache-dir -r /opt/treatment-marts/requirements.txt -c /opt/treatment-marts/constraints.txt \
 && pip install --no-cache-dir --no-deps -e /opt/treatment-marts

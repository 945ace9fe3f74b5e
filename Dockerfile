# The Airflow image for docker-compose: the official Airflow 3.3 image plus treatment-marts.

# GX Data Docs served offline (validation/data_docs.py): the pinned static assets, from the lockfile.
FROM node:20-bookworm-slim AS data-docs
WORKDIR /data-docs
COPY data-docs/package.json data-docs/package-lock.json data-docs/.npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt constraints.txt pyproject.toml README.md /opt/treatment-marts/
COPY --chown=airflow:0 include /opt/treatment-marts/include
COPY --chown=airflow:0 expectations /opt/treatment-marts/expectations
COPY --from=data-docs --chown=airflow:0 /data-docs/node_modules /opt/treatment-marts/data-docs/node_modules
ENV TREATMENT_MARTS_DATA_DOCS_ASSETS=/opt/treatment-marts/data-docs/node_modules
RUN pip install --no-cache-dir -r /opt/treatment-marts/requirements.txt -c /opt/treatment-marts/constraints.txt \
 && pip install --no-cache-dir --no-deps -e /opt/treatment-marts

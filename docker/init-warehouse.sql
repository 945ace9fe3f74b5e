-- Runs once when the PostgreSQL volume is created: the warehouse database beside Airflow's metadata.
-- treatment-marts creates the schemas `marts` (public) and `restricted` itself on first publish.
CREATE DATABASE warehouse OWNER airflow;

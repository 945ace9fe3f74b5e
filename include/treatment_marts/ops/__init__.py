"""Operations: policy, retention, notifications, local Airflow, benchmark, synthetic data."""

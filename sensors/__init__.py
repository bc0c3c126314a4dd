"""Sensors target assets by selection; they never import jobs or asset modules.

market_data_sensor, drift_sensor and run_failure_sensor arrive with the monitoring work.
"""

sensors: list = []

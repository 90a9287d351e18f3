"""Benchmark data: latency tables, the accuracy table, and the device registry."""
from .accuracy import DATASETS, AccuracyTable, load_accuracy_csv
from .devices import (CATALOGUE, DATA_ENV, Device, available_devices, device_summaries,
                      load_accuracy, load_device, resolve_data_dir)
from .safe_load import load_pickle, load_torch
from .tables import LatencyTable, load_brpnas_pickle, load_csv_table, load_help_latency

__all__ = [
    "CATALOGUE", "DATA_ENV", "DATASETS", "AccuracyTable", "Device", "LatencyTable",
    "available_devices", "device_summaries", "load_accuracy", "load_accuracy_csv", "load_brpnas_pickle",
    "load_csv_table", "load_device", "load_help_latency", "load_pickle", "load_torch",
    "resolve_data_dir",
]

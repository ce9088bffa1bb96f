"""Device calibration: Google's per-model table, and calibrating a Linux adapter against a known device."""

from bluezone.calibration.table import (
    CalibrationTable,
    CalibrationTableError,
    DeviceCalibration,
    UnknownDeviceError,
    default_table,
    lookup,
)

__all__ = [
    "CalibrationTable",
    "CalibrationTableError",
    "DeviceCalibration",
    "UnknownDeviceError",
    "default_table",
    "lookup",
]

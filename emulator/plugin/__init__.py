"""The parts of the pytest plugin (`emulator.pytest_plugin`, its entry point): `servers`, the
session's emulator on a socket or in-process; `handle`, what a test gets; `options`, the ini
options and the marker, checked."""

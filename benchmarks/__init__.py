"""Benchmarks: `python -m benchmarks NAME [--users N]`. Each prints figures beside baselines
measured in the same run; the last line printed is one JSON object."""

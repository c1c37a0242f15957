"""Speed, memory and accuracy benchmarks of the solver backends (issue 5).

Run ``python -m benchmarks.run [--quick]``.  Not part of the test suite.
"""

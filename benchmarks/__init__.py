"""netrepl's benchmark suite: `python -m benchmarks` measures every figure of the performance
table against a reference measured in the same run, on loopback only.

Peers (flooder, file sink) run in processes of their own so they never share netrepl's
interpreter. Every subprocess has a timeout and is killed on teardown; see docs/performance.md.
"""

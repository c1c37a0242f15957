"""Peers measured side by side (issue 11): ``python -m benchmarks.peers``.

pyhbnode (native backend, eager and compiled steps) against raw torchdiffeq
``odeint_adjoint``, torchode and diffrax (JAX) on the same models, weights, batches and
tolerances, iterations interleaved in one process, one thread each.  The peers are the
optional ``bench`` extra; a peer that is not installed is left out with a note.
"""

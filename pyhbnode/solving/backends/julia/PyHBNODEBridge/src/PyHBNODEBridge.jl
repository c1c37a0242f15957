"""
    PyHBNODEBridge

The Julia half of pyhbnode's `backend="julia"`: rebuilds a pyhbnode vector field (NODE,
ANODE, SONODE, HBNODE, GHBNODE over dense / conv / activation / tpad layers) from the JSON
spec written by `pyhbnode/solving/backends/julia/_spec.py` as plain functions of one flat
parameter vector, solves it with `DP5()` and differentiates it with SciMLSensitivity's
`adjoint_sensitivities` (BacksolveAdjoint or InterpolatingAdjoint, Zygote VJPs), on the CPU
or, with CUDA.jl loaded (the extension in `ext/`), on a CUDA device for dense fields.

Python calls, in order: `build(spec_json)` once per field structure, then per solve
`forward(field, u0, usize, p, ts; rtol, atol, maxiters, sensealg, seminorm, keep, device)`
and, for gradients, `backward(fw, Δ)`; `rhs(field, u, usize, p, t; device)` for the layout
check. All arrays cross the boundary flat, as host vectors (DLPack at the crossing; a GPU solve
copies the state, parameters and cotangent up and the results down, see `device.jl`); `usize` is
the torch shape reversed, i.e. the column-major Julia size.

State layouts (Julia order): first order `(features..., B)`; second order
`(features..., 2, B)` with half 1 = h and half 2 = v (SONODE) or m ((G)HBNODE). Paper sign
convention: dh/dt = σ(m), dm/dt = -γ m + f(h) - ξ h.
"""
module PyHBNODEBridge

using ChainRulesCore: ChainRulesCore
using DLPack: DLPack
using JSON: JSON
using Logging: Logging
using NNlib: NNlib
using OrdinaryDiffEqLowOrderRK: DP5
using PrecompileTools: @compile_workload, @setup_workload
using SciMLBase: SciMLBase, ODEProblem, solve
using SciMLSensitivity: adjoint_sensitivities, BacksolveAdjoint, InterpolatingAdjoint, ZygoteVJP

export build, rhs, forward, backward, selftest

"The spec format this package reads (`format` key of the JSON; `_spec.SPEC_FORMAT` in Python)."
const SPEC_FORMAT = 2

"""
    SpecError(msg)

A spec that this package cannot rebuild (a version mismatch between the Python and Julia
halves, or an inconsistent spec).
"""
struct SpecError <: Exception
    msg::String
end
Base.showerror(io::IO, e::SpecError) = print(io, "PyHBNODEBridge.SpecError: ", e.msg)

include("device.jl")
include("field.jl")
include("solve.jl")
include("selftest.jl")
include("workload.jl")

end # module

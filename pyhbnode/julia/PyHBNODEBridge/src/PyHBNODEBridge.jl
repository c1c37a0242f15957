"""
    PyHBNODEBridge

The Julia half of pyhbnode's `backend="julia"`: rebuilds a pyhbnode vector field (NODE,
ANODE, SONODE, HBNODE, GHBNODE over dense / conv / activation / tpad layers) from the JSON
spec written by `pyhbnode/julia/spec.py` as Lux layers over a `ComponentArray` view of one
flat parameter vector, solves it with `DP5()` and differentiates it with
SciMLSensitivity's `adjoint_sensitivities`.

Python calls, in order: `build(spec_json)` once per field structure, then per solve
`forward(field, u0, usize, p, ts; rtol, atol, maxiters, sensealg, vjp, seminorm, keep)`
and, for gradients, `backward(fw, Δ)`. All arrays cross the boundary flat (DLPack,
zero-copy); `usize` is the torch shape reversed, i.e. the column-major Julia size.

State layouts (Julia order): first order `(features..., B)`; second order
`(features..., 2, B)` with half 1 = h and half 2 = v (SONODE) or m ((G)HBNODE). Paper sign
convention: dh/dt = σ(m), dm/dt = -γ m + f(h) - ξ h.

`pyhbnode/julia/emulate.py` is a numpy mirror of `layers.jl` and `fields.jl`; keep the
two in step.
"""
module PyHBNODEBridge

using ChainRulesCore: ChainRulesCore
using ComponentArrays: ComponentArrays, ComponentArray, getaxes
using DLPack: DLPack
using JSON: JSON
using LinearAlgebra: LinearAlgebra
using Logging: Logging
using Lux: Lux
using NNlib: NNlib
using OrdinaryDiffEqLowOrderRK: DP5
using PrecompileTools: @compile_workload, @setup_workload
using Random: Random
using SciMLBase: SciMLBase, ODEProblem, solve
using SciMLSensitivity: SciMLSensitivity, adjoint_sensitivities, BacksolveAdjoint,
    GaussAdjoint, InterpolatingAdjoint, QuadratureAdjoint, EnzymeVJP, ReverseDiffVJP,
    TrackerVJP, ZygoteVJP
using Zygote: Zygote

export build, rhs, forward, backward, selftest

"The spec format this package reads (`format` key of the JSON)."
const SPEC_FORMAT = 1

"""
    SpecError(msg)

A spec that this package cannot rebuild (a version mismatch between the Python and Julia
halves, or a layout check that failed).
"""
struct SpecError <: Exception
    msg::String
end
Base.showerror(io::IO, e::SpecError) = print(io, "PyHBNODEBridge.SpecError: ", e.msg)

include("layers.jl")
include("fields.jl")
include("solve.jl")
include("selftest.jl")
include("workload.jl")

end # module

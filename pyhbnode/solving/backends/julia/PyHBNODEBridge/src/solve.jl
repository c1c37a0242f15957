# Forward DP5 solve, adjoint backward, one RHS evaluation: the API Python calls.

"""
    make_sensealg(name, n_params)

| pyhbnode        | SciMLSensitivity                                              | forward solve   |
|:----------------|:--------------------------------------------------------------|:----------------|
| `backsolve`     | `BacksolveAdjoint(; autojacvec = ZygoteVJP(), checkpointing = true)` | saved at `ts`   |
| `interpolating` | `InterpolatingAdjoint(; autojacvec = ZygoteVJP(), checkpointing = false)` | dense       |

`backsolve` re-integrates y backward and resets it to the forward state at every output
time (torchdiffeq's `odeint_adjoint` does the same); `interpolating` reads y(t) from the
forward solve's dense interpolant. The VJP is always Zygote's and explicit: never
`autojacvec = nothing`, whose failure silently falls back to finite differences.
`allow_nothing` is set for fields without parameters (their `dp` is legitimately `nothing`).
"""
function make_sensealg(name::AbstractString, n_params::Integer)
    vjp = ZygoteVJP(; allow_nothing = n_params == 0)
    name == "backsolve" && return BacksolveAdjoint(; autojacvec = vjp, checkpointing = true)
    name == "interpolating" && return InterpolatingAdjoint(; autojacvec = vjp, checkpointing = false)
    throw(ArgumentError("unknown sensealg \"$name\"; choose \"backsolve\" or \"interpolating\""))
end

"Whether the forward solve must be dense (the adjoint interpolates it)."
dense_forward(name::AbstractString) = name == "interpolating"

# --- helpers ---------------------------------------------------------------------------------

_size(usize) = Tuple(Int(s) for s in usize)

function _params(b::Bridge, pv, ::Type{T}) where {T}
    if pv === nothing || length(pv) == 0
        b.n_params == 0 || throw(DimensionMismatch("no parameters sent, the field has $(b.n_params)"))
        return zeros(T, 1)   # a dummy: SciMLSensitivity needs a parameter vector
    end
    eltype(pv) == T || throw(ArgumentError("the parameters are $(eltype(pv)) but the state is $T: use one dtype"))
    length(pv) == b.n_params || throw(DimensionMismatch("$(length(pv)) parameters sent, the field has $(b.n_params)"))
    return Vector{T}(pv)     # own the memory: the torch tensor may change later
end

"""
    checked_device(field, name) -> Device

The device `name` names, or an `ArgumentError` saying why the field cannot run there:
convolutions need NNlib's cuDNN extension on the GPU, which the bridge does not pin.
"""
function checked_device(b::Bridge, name::AbstractString)
    dev = parse_device(name)
    problem = device_problem(dev)
    isempty(problem) || throw(ArgumentError(problem))
    if dev isa CUDADevice && has_conv(b.kind)
        throw(ArgumentError("convolutional fields run on the CPU only (on the GPU NNlib needs cuDNN, which PyHBNODEBridge does not pin); dense (MLP) fields run on cuda:N"))
    end
    return dev
end

"""
    exception_name(e) -> String

The type name Python maps onto a Python exception (`_maps.py`).
"""
exception_name(e) = String(nameof(typeof(e)))
exception_name(e::TaskFailedException) = exception_name(e.task.exception)
exception_name(e::CompositeException) = isempty(e.exceptions) ? "CompositeException" : exception_name(first(e.exceptions))

"""
    MaxitersWatch

A logger that counts solver messages mentioning `maxiters` (`adjoint_sensitivities`
returns no retcode; DiffEqBase's `failure_message(_, Val(:max_iters))` says "Larger
maxiters is needed" at WarnLevel through SciMLLogging, which logs to the current logger)
and forwards everything else; with `quiet = true` it swallows the forward solver's failure
warnings, which Python turns into typed exceptions.
"""
struct MaxitersWatch{L <: Logging.AbstractLogger} <: Logging.AbstractLogger
    inner::L
    hits::Base.RefValue{Int}
    quiet::Bool
end
MaxitersWatch(inner, quiet::Bool) = MaxitersWatch(inner, Ref(0), quiet)

const SOLVER_WARNINGS = ("maxiters", "dt was forced below", "instability detected", "nan dt", "dt(", "interrupted")

Logging.min_enabled_level(l::MaxitersWatch) = min(Logging.Warn, Logging.min_enabled_level(l.inner))
Logging.shouldlog(l::MaxitersWatch, args...) = true
Logging.catch_exceptions(l::MaxitersWatch) = Logging.catch_exceptions(l.inner)
function Logging.handle_message(l::MaxitersWatch, level, message, _module, group, id, file, line; kwargs...)
    text = lowercase(string(message))
    occursin("maxiters", text) && (l.hits[] += 1)
    l.quiet && any(w -> occursin(w, text), SOLVER_WARNINGS) && return nothing
    if level >= Logging.min_enabled_level(l.inner) && Logging.shouldlog(l.inner, level, _module, group, id)
        Logging.handle_message(l.inner, level, message, _module, group, id, file, line; kwargs...)
    end
    return nothing
end

"""
    SemiNorm(n, np, backsolve)

The seminorm of Kidger, Chen & Lyons ("Hey, that's not an ODE", 2021) for the adjoint's step
control, defined as diffrax's `adjoint_rms_seminorm` and pyhbnode's native backend do: the
RMS over the state adjoint λ and, for backsolve, the re-integrated state y, leaving the
parameter adjoint out entirely. What it guarantees: the norm does not depend on the
parameter-adjoint components, so their error never rejects or shrinks a step. It does not
guarantee fewer evaluations than the full RMS: averaging over fewer components can give a
larger value when the parameter components' scaled error is below average (torchdiffeq's
max-of-RMS seminorm has the same caveat against an RMS full norm). Adjoint state layouts
(SciMLSensitivity v7.112.1): interpolating `[λ; dp]` (interpolating_adjoint.jl,
`z0 = vec(zero(λ))`, `len = numstates + numparams`), backsolve `[λ; dp; y]`
(backsolve_adjoint.jl, `z0 = [vec(zero(λ)); vec(sense.y)]`). Plain fields only (isbits).
"""
struct SemiNorm
    n::Int
    np::Int
    backsolve::Bool
end
(s::SemiNorm)(u::Number, t) = abs(u)
function (s::SemiNorm)(u::AbstractArray, t)
    L = length(u)
    if s.backsolve && L == 2 * s.n + s.np
        a = sum(abs2, view(u, 1:(s.n)))
        b = sum(abs2, view(u, (s.n + s.np + 1):L))
        return sqrt((a + b) / (2 * s.n))
    elseif !s.backsolve && L == s.n + s.np
        return sqrt(sum(abs2, view(u, 1:(s.n))) / s.n)
    end
    return sqrt(sum(abs2, u) / L)
end

"""
In-place `dgdu_discrete(out, u, p, t, i)`: the cotangent of output `i` (Δ is `(n, T)`).

`lowest` records the smallest `i` applied. SciMLSensitivity applies output `i` when the
adjoint solve reaches `t[i]`, the last one (`i = 1`, `t[1]` = the forward's `t0`) at its
end (`ReverseLossCallback`, adjoint_common.jl), so `lowest[] == 1` proves that the adjoint
reached t0: `adjoint_sensitivities` returns no retcode, and one stopped early (maxiters,
dtmin, instability, NaN) returns the finite but wrong state where it stopped.
"""
struct DiscreteGrad{D}
    Δ::D
    lowest::Base.RefValue{Int}
end
DiscreteGrad(Δ) = DiscreteGrad(Δ, Ref(typemax(Int)))
function (g::DiscreteGrad)(out, u, p, t, i)
    vec(out) .= view(g.Δ, :, i)
    g.lowest[] = min(g.lowest[], i)
    return nothing
end

# --- forward ---------------------------------------------------------------------------------

"""
    Forward

What Python reads after `forward`: `success`, `retcode`, `t_reached`, `dt_last` (NaN when
unknown), `nf`, `naccept`, `nreject`, `counter` (rhs calls; equals `nf`), `ys` (the flat
`(usize..., T)` trajectory, or `nothing` on failure); the rest is what `backward` needs.
"""
struct Forward
    success::Bool
    retcode::String
    t_reached::Float64
    dt_last::Float64
    nf::Int
    naccept::Int
    nreject::Int
    counter::Int
    ys::Any
    sol::Any
    rhs::Any
    u0::Any
    p::Any
    ts::Any
    n_params::Int
    device::Device
    sensealg::String
    seminorm::Bool
    rtol::Float64
    atol::Float64
    maxiters::Int
end

"""
    forward(field, u0, usize, p, ts; rtol, atol, maxiters, sensealg, seminorm, keep, device) -> Forward

Solve `du/dt = field(u, p, t)` with `DP5()` from `reshape(u0, usize)` and return the states
at `ts`. With `keep = true` the solution is kept for `backward`: dense (no `saveat`) for
`interpolating`, saved at `ts` for `backsolve` (its checkpoints). Failures return
`success = false` and the retcode (never throw). `device` (`"cpu"` or `"cuda:N"`) is where
the solve runs; the arrays Python sends and reads are host vectors either way.
"""
function forward(b::Bridge, u0v::AbstractVector, usize, pv, tsv::AbstractVector;
        rtol::Real = 1.0e-7, atol::Real = 1.0e-9, maxiters::Integer = 10_000,
        sensealg::AbstractString = "backsolve", seminorm::Bool = false, keep::Bool = true,
        device::AbstractString = "cpu")
    T = eltype(u0v)
    T <: Union{Float32, Float64} || throw(ArgumentError("states must be Float32 or Float64, got $T"))
    sz = _size(usize)
    prod(sz) == length(u0v) || throw(DimensionMismatch("state of length $(length(u0v)) cannot have size $sz"))
    length(sz) >= 2 || throw(DimensionMismatch("states must be batched: size $sz"))
    make_sensealg(sensealg, b.n_params)   # validate now, not after the forward solve
    dev = checked_device(b, device)
    u0 = on_device(dev, reshape(Vector{T}(u0v), sz))
    p = on_device(dev, _params(b, pv, T))
    ts = Vector{T}(tsv)
    length(ts) >= 2 || throw(ArgumentError("need at least two output times"))
    rhs = BridgeRHS(b)
    prob = ODEProblem{false}(rhs, u0, (ts[1], ts[end]), p)
    dense = keep && dense_forward(sensealg)
    kw = (abstol = T(atol), reltol = T(rtol), maxiters = Int(maxiters))
    watch = MaxitersWatch(Logging.current_logger(), true)
    sol = Logging.with_logger(watch) do
        # save_end: a failed solve also saves where it stopped (OrdinaryDiffEqCore
        # solution_endpoint_match_cur_integrator!), so sol.t[end] is the time reached, not
        # the last output time before it; a successful one ends on ts[end], saved once.
        dense ? solve(prob, DP5(); kw...) : solve(prob, DP5(); saveat = ts, save_end = true, kw...)
    end
    success = SciMLBase.successful_retcode(sol)
    ys = nothing
    if success
        us = dense ? sol(ts).u : sol.u
        length(us) == length(ts) || error("DP5 saved $(length(us)) states for $(length(ts)) output times")
        ys = to_host(reduce(vcat, map(vec, us)))   # the flat (usize..., T) trajectory
    end
    st = sol.stats
    dt_last = dense && length(sol.t) >= 2 ? Float64(sol.t[end] - sol.t[end - 1]) : NaN
    return Forward(
        success, String(Symbol(sol.retcode)), Float64(sol.t[end]), dt_last,
        Int(st.nf), Int(st.naccept), Int(st.nreject), rhs.counter[],
        ys, keep ? sol : nothing, rhs, u0, p, ts, b.n_params, dev,
        String(sensealg), seminorm, Float64(rtol), Float64(atol), Int(maxiters),
    )
end

# --- backward --------------------------------------------------------------------------------

"""What Python reads after `backward`: flat `du0`, `dp`, `nfe`, `finite`, `reached_t0`
(the adjoint solve got to the forward's t0: else du0/dp are wrong), `hit_maxiters` (it
logged the maxiters warning: names the cause)."""
struct Backward{A, B}
    du0::A
    dp::B
    nfe::Int
    finite::Bool
    reached_t0::Bool
    hit_maxiters::Bool
end

"""
    backward(fw, Δ; maxiters = fw.maxiters) -> Backward

Gradients of `dot(Δ, ys)` with respect to `u0` and `p` by `adjoint_sensitivities` on the
kept forward solution, with the forward tolerances and `maxiters` (the adjoint's own
defaults are 1e-6/1e-3). `Δ` is flat `(usize..., T)`. `nfe` counts vector-field calls
during the adjoint (one per vector-Jacobian product).
"""
function backward(fw::Forward, Δv::AbstractVector; maxiters::Integer = fw.maxiters)
    fw.sol === nothing && throw(ArgumentError("the forward solve ran with keep = false: nothing to differentiate"))
    fw.success || throw(ArgumentError("the forward solve failed ($(fw.retcode)): nothing to differentiate"))
    T = eltype(fw.u0)
    n, nT = length(fw.u0), length(fw.ts)
    length(Δv) == n * nT || throw(DimensionMismatch("cotangent of length $(length(Δv)), expected $(n * nT)"))
    eltype(Δv) == T || throw(ArgumentError("the cotangent is $(eltype(Δv)) but the state is $T"))
    Δ = on_device(fw.device, reshape(Vector{T}(Δv), n, nT))
    sensealg = make_sensealg(fw.sensealg, fw.n_params)
    kw = (abstol = T(fw.atol), reltol = T(fw.rtol), maxiters = Int(maxiters))
    if fw.seminorm
        kw = merge(kw, (internalnorm = SemiNorm(n, length(fw.p), fw.sensealg == "backsolve"),))
    end
    before = fw.rhs.counter[]
    watch = MaxitersWatch(Logging.current_logger(), false)
    dgdu = DiscreteGrad(Δ)
    du0, dp = Logging.with_logger(watch) do
        adjoint_sensitivities(fw.sol, DP5(); t = fw.ts, dgdu_discrete = dgdu, sensealg, kw...)
    end
    nfe = fw.rhs.counter[] - before
    du0f = Vector{T}(to_host(vec(du0)))
    # dp is a 1×np adjoint row (`state_values(adj_sol)[end][...]'`), or nothing without parameters
    dpf = fw.n_params == 0 || dp === nothing ? T[] : Vector{T}(to_host(vec(dp)))
    finite = all(isfinite, du0f) && all(isfinite, dpf)
    return Backward(du0f, dpf, nfe, finite, dgdu.lowest[] == 1, watch.hits[] > 0)
end

# --- one evaluation (layout checks) ------------------------------------------------------

"""
    rhs(field, u, usize, p, t; device = "cpu") -> flat du

One evaluation of the rebuilt field on `device`; Python compares it with torch before the
first solve of each structure (catches layout and conv-orientation mistakes).
"""
function rhs(b::Bridge, uv::AbstractVector, usize, pv, t::Real; device::AbstractString = "cpu")
    T = eltype(uv)
    dev = checked_device(b, device)
    u = on_device(dev, reshape(Vector{T}(uv), _size(usize)))
    return to_host(vec(BridgeRHS(b)(u, on_device(dev, _params(b, pv, T)), T(t))))
end

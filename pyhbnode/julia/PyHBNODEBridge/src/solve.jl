# Forward DP5 solve, adjoint backward, and the small API Python calls.

# --- sensitivity algorithms and VJP choices (pyhbnode/julia/maps.py has the same tables) ---

"""`(kind, checkpointing, dense forward)` per pyhbnode sensealg name."""
const SENSEALGS = Dict(
    "interpolating" => (:interpolating, false, true),
    "interpolating+checkpointing" => (:interpolating, true, false),
    "backsolve" => (:backsolve, true, false),
    "quadrature" => (:quadrature, false, true),
    "gauss" => (:gauss, false, true),
    "gauss+checkpointing" => (:gauss, true, false),
)

function sensealg_spec(name::AbstractString)
    haskey(SENSEALGS, name) ||
        throw(ArgumentError("unknown sensealg \"$name\"; choose one of $(sort(collect(keys(SENSEALGS))))"))
    return SENSEALGS[name]
end

"""
    make_vjp(name; allow_nothing = false)

The explicit `autojacvec` (never `nothing`, whose failure silently degrades to finite
differences). `allow_nothing` is set for fields without parameters, whose parameter
gradient is legitimately `nothing` (the bridge then solves with a dummy parameter).
"""
function make_vjp(name::AbstractString; allow_nothing::Bool = false)
    name == "zygote" && return ZygoteVJP(; allow_nothing)
    name == "enzyme" && return EnzymeVJP()
    name == "reversediff" && return ReverseDiffVJP(false)
    name == "reversediff-compiled" && return ReverseDiffVJP(true)
    name == "tracker" && return TrackerVJP(; allow_nothing)
    name == "forwarddiff" && return true
    name == "finitediff" && return false
    throw(ArgumentError("unknown vjp \"$name\"; choose zygote, enzyme, reversediff, reversediff-compiled, tracker, forwarddiff or finitediff"))
end

"""
    make_sensealg(name, vjp)

| pyhbnode                      | SciMLSensitivity                                        |
|:------------------------------|:--------------------------------------------------------|
| `interpolating`               | `InterpolatingAdjoint(; autojacvec, checkpointing=false)` |
| `interpolating+checkpointing` | `InterpolatingAdjoint(; autojacvec, checkpointing=true)`  |
| `backsolve`                   | `BacksolveAdjoint(; autojacvec, checkpointing=true)`      |
| `quadrature`                  | `QuadratureAdjoint(; autojacvec)` (tolerances = forward)  |
| `gauss`, `gauss+checkpointing`| `GaussAdjoint(; autojacvec, checkpointing)`               |
"""
function make_sensealg(name::AbstractString, vjp)
    kind, ckpt, _ = sensealg_spec(name)
    kind === :interpolating && return InterpolatingAdjoint(; autojacvec = vjp, checkpointing = ckpt)
    kind === :backsolve && return BacksolveAdjoint(; autojacvec = vjp, checkpointing = true)
    kind === :quadrature && return QuadratureAdjoint(; autojacvec = vjp)
    return GaussAdjoint(; autojacvec = vjp, checkpointing = ckpt)
end

# --- devices (the CUDA extension adds methods / the hook) ---------------------------------

"Wait for the device work on `x` to finish before Python reads it (no-op on the CPU)."
sync_device(x) = nothing

const DEVICE_HOOK = Ref{Any}(nothing)

"""
    select_device(i)

Make CUDA device `i` (torch's index) current. Needs `using CUDA, cuDNN`, which loads the
extension that installs the hook.
"""
function select_device(i::Integer)
    hook = DEVICE_HOOK[]
    hook === nothing && throw(ArgumentError(
        "CUDA.jl and cuDNN.jl are not loaded: run `python -m pyhbnode.julia install --cuda`"))
    hook(Int(i))
    return nothing
end

# --- helpers ---------------------------------------------------------------------------------

_size(usize) = Tuple(Int(s) for s in usize)

function _params(b::Bridge, pv, like::AbstractVector{T}) where {T}
    if pv === nothing || length(pv) == 0
        b.n_params == 0 || throw(DimensionMismatch("no parameters sent, the field has $(b.n_params)"))
        return fill!(similar(like, T, 1), zero(T))
    end
    eltype(pv) == T || throw(ArgumentError("the parameters are $(eltype(pv)) but the state is $T: use one dtype"))
    length(pv) == b.n_params || throw(DimensionMismatch("$(length(pv)) parameters sent, the field has $(b.n_params)"))
    return copy(pv)
end

_flat(x::DenseArray) = vec(x)
_flat(x) = vec(copy(x))

"""
    exception_name(e) -> String

The type name Python maps onto a Python exception (`pyhbnode/julia/maps.py`).
"""
exception_name(e) = String(nameof(typeof(e)))
exception_name(e::TaskFailedException) = exception_name(e.task.exception)
exception_name(e::CompositeException) = isempty(e.exceptions) ? "CompositeException" : exception_name(first(e.exceptions))

"""
    MaxitersWatch

A logger that counts solver messages mentioning `maxiters` (the adjoint's own retcode is
never returned by `adjoint_sensitivities`) and forwards everything to the wrapped logger;
with `quiet = true` it swallows the forward solver's failure warnings, which Python turns
into typed exceptions instead.
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
    SemiNorm(n, np, kind)

torchdiffeq's `seminorm` for the adjoint's step control: the RMS norm over the state
adjoint λ (and, for backsolve, the re-integrated state y) without the parameter adjoint.
Adjoint state layouts (SciMLSensitivity): interpolating `[λ; dp]`, backsolve `[λ; dp; y]`;
quadrature and gauss integrate dp outside the state, so their norm is already a seminorm.
Any other length (checkpoint re-solves of the forward state) gets the plain RMS norm.
"""
struct SemiNorm
    n::Int
    np::Int
    kind::Symbol
end
(s::SemiNorm)(u::Number, t) = abs(u)
function (s::SemiNorm)(u::AbstractArray, t)
    L = length(u)
    if s.kind === :backsolve && L == 2 * s.n + s.np
        a = sum(abs2, view(u, 1:(s.n)))
        b = sum(abs2, view(u, (s.n + s.np + 1):L))
        return sqrt((a + b) / (2 * s.n))
    elseif s.kind === :interpolating && L == s.n + s.np
        return sqrt(sum(abs2, view(u, 1:(s.n))) / s.n)
    end
    return sqrt(sum(abs2, u) / L)
end

"""In-place `dgdu_discrete(out, u, p, t, i)`: the cotangent of output `i` (Δ is `(n, T)`)."""
struct DiscreteGrad{D}
    Δ::D
end
function (g::DiscreteGrad)(out, u, p, t, i)
    vec(out) .= view(g.Δ, :, i)
    return nothing
end

# --- forward ---------------------------------------------------------------------------------

"""
    Forward

What Python reads after `forward` (`success`, `retcode`, `t_reached`, `dt_last` (NaN when
unknown), `nf`, `naccept`, `nreject`, `counter` (rhs calls; should equal `nf`), `ys` (flat
`(usize..., T)` trajectory or `nothing` on failure)) and what `backward` needs.
"""
mutable struct Forward
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
    sensealg::String
    vjp::String
    seminorm::Bool
    rtol::Float64
    atol::Float64
    maxiters::Int
end

"""
    forward(field, u0, usize, p, ts; rtol, atol, maxiters, sensealg, vjp, seminorm, keep) -> Forward

Solve `du/dt = field(u, p, t)` with `DP5()` from `reshape(u0, usize)` and return the states
at `ts`. With `keep = true` the solution is kept for `backward`: dense (no `saveat`) for
`interpolating`, `quadrature` and `gauss`, whose adjoints interpolate the forward solution,
and saved at `ts` for `backsolve` and the checkpointing variants (checkpoints = `ts`).
Failures return early with `success = false` and the retcode (never throw).
"""
function forward(b::Bridge, u0v::AbstractVector, usize, pv, tsv::AbstractVector;
        rtol::Real = 1.0e-7, atol::Real = 1.0e-9, maxiters::Integer = 10_000,
        sensealg::AbstractString = "interpolating", vjp::AbstractString = "zygote",
        seminorm::Bool = false, keep::Bool = true)
    T = eltype(u0v)
    T <: Union{Float32, Float64} || throw(ArgumentError("states must be Float32 or Float64, got $T"))
    sz = _size(usize)
    prod(sz) == length(u0v) || throw(DimensionMismatch("state of length $(length(u0v)) cannot have size $sz"))
    length(sz) >= 2 || throw(DimensionMismatch("states must be batched: size $sz"))
    _, _, dense = sensealg_spec(sensealg)
    make_vjp(vjp)  # validate now, not after the forward solve
    u0 = reshape(copy(u0v), sz)          # own the memory: the torch tensor may change later
    p = _params(b, pv, u0v)
    ts = convert(Vector{T}, collect(tsv))
    length(ts) >= 2 || throw(ArgumentError("need at least two output times"))
    rhs = BridgeRHS(b)
    prob = ODEProblem{false}(rhs, u0, (ts[1], ts[end]), p)
    dense = keep && dense
    kw = (abstol = T(atol), reltol = T(rtol), maxiters = Int(maxiters))
    watch = MaxitersWatch(Logging.current_logger(), true)
    sol = Logging.with_logger(watch) do
        dense ? solve(prob, DP5(); kw...) : solve(prob, DP5(); saveat = ts, kw...)
    end
    success = SciMLBase.successful_retcode(sol)
    ys = nothing
    if success
        us = dense ? sol(ts).u : sol.u
        length(us) == length(ts) || error("DP5 saved $(length(us)) states for $(length(ts)) output times")
        ys = vec(reduce(hcat, map(vec, us)))   # (prod(usize), T): the flat (usize..., T) trajectory
        sync_device(ys)
    end
    st = sol.stats
    t_reached = Float64(sol.t[end])
    dt_last = dense && length(sol.t) >= 2 ? Float64(sol.t[end] - sol.t[end - 1]) : NaN
    return Forward(
        success, String(Symbol(sol.retcode)), t_reached, dt_last,
        Int(st.nf), Int(st.naccept), Int(st.nreject), rhs.counter[],
        ys, keep ? sol : nothing, rhs, u0, p, ts, b.n_params,
        String(sensealg), String(vjp), seminorm, Float64(rtol), Float64(atol), Int(maxiters),
    )
end

# --- backward --------------------------------------------------------------------------------

"""What Python reads after `backward`: flat `du0`, `dp`, `nfe`, `finite`, `hit_maxiters`."""
struct Backward{A, B}
    du0::A
    dp::B
    nfe::Int
    finite::Bool
    hit_maxiters::Bool
end

"""
    backward(fw, Δ) -> Backward

Gradients of `dot(Δ, ys)` with respect to `u0` and `p` by `adjoint_sensitivities` on the
kept forward solution, with the forward tolerances and `maxiters` (the adjoint's defaults
are 1e-6/1e-3). `Δ` is flat `(usize..., T)`. `nfe` is the number of vector-field calls
during the adjoint (one per vector-Jacobian product, checkpoint re-solves included).
"""
function backward(fw::Forward, Δv::AbstractVector)
    fw.sol === nothing && throw(ArgumentError("the forward solve ran with keep = false: nothing to differentiate"))
    fw.success || throw(ArgumentError("the forward solve failed ($(fw.retcode)): nothing to differentiate"))
    T = eltype(fw.u0)
    n = length(fw.u0)
    nT = length(fw.ts)
    length(Δv) == n * nT || throw(DimensionMismatch("cotangent of length $(length(Δv)), expected $(n * nT)"))
    eltype(Δv) == T || throw(ArgumentError("the cotangent is $(eltype(Δv)) but the state is $T"))
    Δ = reshape(copy(Δv), n, nT)
    kind, ckpt, _ = sensealg_spec(fw.sensealg)
    sensealg = make_sensealg(fw.sensealg, make_vjp(fw.vjp; allow_nothing = fw.n_params == 0))
    kw = (abstol = T(fw.atol), reltol = T(fw.rtol), maxiters = fw.maxiters)
    if fw.seminorm
        kw = merge(kw, (internalnorm = SemiNorm(n, length(fw.p), kind),))
    end
    before = fw.rhs.counter[]
    watch = MaxitersWatch(Logging.current_logger(), false)
    du0, dp = Logging.with_logger(watch) do
        adjoint_sensitivities(fw.sol, DP5(); t = fw.ts, dgdu_discrete = DiscreteGrad(Δ), sensealg, kw...)
    end
    nfe = fw.rhs.counter[] - before
    du0f = copyto!(similar(fw.u0, T, n), vec(du0))
    dpf = copyto!(similar(fw.p, T, length(fw.p)), vec(dp'))
    fw.n_params == 0 && (dpf = dpf[1:0])
    finite = all(isfinite, du0f) && all(isfinite, dpf)
    # Without re-solves, one adjoint step costs ~6 VJPs: the count reveals a capped adjoint.
    capped = (kind === :backsolve || (kind === :interpolating && !ckpt)) && nfe >= 6 * fw.maxiters
    sync_device(du0f)
    return Backward(du0f, dpf, nfe, finite, watch.hits[] > 0 || capped)
end

# --- one evaluation (layout checks) ------------------------------------------------------

"""
    rhs(field, u, usize, p, t) -> flat du

One evaluation of the rebuilt field; Python compares it with torch before the first solve
of each structure (catches layout and conv-orientation mistakes).
"""
function rhs(b::Bridge, uv::AbstractVector, usize, pv, t::Real)
    T = eltype(uv)
    sz = _size(usize)
    u = reshape(copy(uv), sz)
    p = _params(b, pv, uv)
    du = BridgeRHS(b)(u, p, T(t))
    out = _flat(du)
    sync_device(out)
    return out
end

# The five vector fields, their coefficients, the ComponentArray parameter view and the
# counted out-of-place right-hand side. Mirrors `EmulatedField` in pyhbnode/julia/emulate.py.

# --- coefficients: γ = ε·sigmoid(ω) (or fixed), ξ = softplus(χ) (or fixed) -----------------

struct FixedCoef
    value::Float64
end
struct SigmoidCoef
    eps::Float64
end
struct SoftplusCoef end

coef(c::FixedCoef, θ, ::Type{T}) where {T} = T(c.value)
# ω and χ are 1-element vectors (no scalar indexing of GPU arrays); the result broadcasts.
coef(c::SigmoidCoef, θ, ::Type{T}) where {T} = T(c.eps) .* NNlib.sigmoid.(θ.omega)
coef(::SoftplusCoef, θ, ::Type{T}) where {T} = NNlib.softplus.(θ.chi)

function make_coef(d)
    kind = String(d["kind"])
    kind == "fixed" && return FixedCoef(Float64(d["value"]))
    kind == "sigmoid" && return SigmoidCoef(Float64(d["eps"]))
    kind == "softplus" && return SoftplusCoef()
    throw(SpecError("unknown coefficient kind \"$kind\""))
end

# --- field kinds ----------------------------------------------------------------------------

"""NODE / ANODE: `du = f(u, t)`; `u` is `(features..., B)`."""
struct FirstOrder{N}
    net::N
end

"""SONODE: `u = (features..., C, 2, B)`; `dh = v`, `dv = f([h; v], t)` where f sees
`(features..., 2C, B)` (torch's `flatten(1, 2)`: the same memory)."""
struct SecondOrder{N}
    net::N
end

"""(G)HBNODE (eq. 10, 15): `dh = σ(m)`, `dm = f(h, t) - γ m - ξ h`; HBNODE is σ = identity,
ξ = 0."""
struct HeavyBall{N, S, G, X}
    net::N
    sigma::S
    gamma::G
    xi::X
end

sigma_apply(::Nothing, m) = m
sigma_apply(a::ActOp, m) = a.f.(m)

@inline _front(sz::NTuple{N, Int}, ::Val{K}) where {N, K} = ntuple(i -> sz[i], Val(K))

evaluate(k::FirstOrder, u, θ, t) = apply_ops(k.net, u, θ, t)

function evaluate(k::SecondOrder, u::AbstractArray{T, N}, θ, t) where {T, N}
    sz = size(u)
    B = sz[N]
    fsz = _front(sz, Val(N - 2))                  # (features..., C)
    F = prod(fsz)
    x = reshape(u, (_front(fsz, Val(N - 3))..., 2 * fsz[N - 2], B))
    u2 = reshape(u, 2F, B)                        # rows 1:F = h, F+1:2F = v
    v = u2[(F + 1):(2F), :]
    dv = reshape(apply_ops(k.net, x, θ, t), F, B)
    return reshape(vcat(v, dv), sz)
end

function evaluate(k::HeavyBall, u::AbstractArray{T, N}, θ, t) where {T, N}
    sz = size(u)
    B = sz[N]
    fsz = _front(sz, Val(N - 2))
    F = prod(fsz)
    u2 = reshape(u, 2F, B)                        # rows 1:F = h, F+1:2F = m
    h = u2[1:F, :]
    m = u2[(F + 1):(2F), :]
    f = reshape(apply_ops(k.net, reshape(h, (fsz..., B)), θ, t), F, B)
    γ = coef(k.gamma, θ, T)
    ξ = coef(k.xi, θ, T)
    dh = sigma_apply(k.sigma, m)
    dm = f .- γ .* m .- ξ .* h
    return reshape(vcat(dh, dm), sz)
end

# --- the built field ----------------------------------------------------------------------

"""
    Bridge

A field rebuilt from a spec: its kind, the ComponentArray axes of the flat parameter
vector (keys `layer_<i>` with `weight`/`bias`, then `omega`, `chi`) and the spec text.
"""
struct Bridge{K, A}
    kind::K
    axes::A
    n_params::Int
    spec::String
end

Base.show(io::IO, b::Bridge) = print(io, "PyHBNODEBridge.Bridge(", nameof(typeof(b.kind)), ", ", b.n_params, " parameters)")

_namedtuple(pairs::Vector{Pair{Symbol, Any}}) = NamedTuple{Tuple(first.(pairs))}(Tuple(last.(pairs)))

"""
    param_axes(params, n, ops)

ComponentArray axes whose flattening order is the spec's parameter order, checked entry by
entry (offset, size, column-major contiguity) and against Lux's own parameter shapes.
"""
function param_axes(params, n::Int, ops)
    order = Symbol[]
    leaves = Dict{Symbol, Any}()
    for e in params
        key, role, sz = Symbol(e["key"]), Symbol(e["role"]), _ints(e["size"])
        if role === :value
            push!(order, key)
            leaves[key] = zeros(sz)
        else
            if !haskey(leaves, key)
                push!(order, key)
                leaves[key] = Pair{Symbol, Any}[]
            end
            push!(leaves[key], role => zeros(sz))
        end
    end
    if isempty(order)  # a field without parameters still gets a (dummy) parameter vector
        nt = (unused = zeros(1),)
    else
        vals = Tuple(leaves[k] isa Vector ? _namedtuple(leaves[k]) : leaves[k] for k in order)
        nt = NamedTuple{Tuple(order)}(vals)
    end
    ax = getaxes(ComponentArray(nt))
    total = max(n, 1)
    probe = ComponentArray(collect(1.0:total), ax)
    length(probe) == total || throw(SpecError("$(length(probe)) parameters in the axes, spec says $n"))
    for e in params
        key, role, sz = Symbol(e["key"]), Symbol(e["role"]), _ints(e["size"])
        off = Int(e["offset"])
        blk = role === :value ? getproperty(probe, key) : getproperty(getproperty(probe, key), role)
        size(blk) == sz || throw(SpecError("$key.$role has size $(size(blk)), spec says $sz"))
        vec(collect(blk)) == collect((off + 1.0):(off + prod(sz))) ||
            throw(SpecError("$key.$role is not the column-major block at offset $off"))
    end
    rng = Random.Xoshiro(0)
    for op in ops
        op isa LuxOp || continue
        key = layer_key(op)
        ps = Lux.initialparameters(rng, op.layer)
        for role in keys(ps)
            want = size(getproperty(ps, role))
            got = size(getproperty(getproperty(probe, key), role))
            want == got || throw(SpecError("Lux's $key.$role has size $want, the spec packs $got"))
        end
    end
    return ax
end

"""
    build(spec_json) -> Bridge

Rebuild a pyhbnode field from the JSON written by `pyhbnode.julia.spec.describe`.
"""
function build(spec_json::AbstractString)
    d = JSON.parse(String(spec_json))
    fmt = Int(d["format"])
    fmt == SPEC_FORMAT || throw(SpecError("spec format $fmt, this PyHBNODEBridge reads $SPEC_FORMAT: reinstall pyhbnode"))
    ops = build_ops(d["net"])
    kind = String(d["kind"])
    field = if kind == "first_order"
        FirstOrder(ops)
    elseif kind == "sonode"
        SecondOrder(ops)
    elseif kind == "heavyball"
        HeavyBall(ops, make_act(d["sigma"]), make_coef(d["gamma"]), make_coef(d["xi"]))
    else
        throw(SpecError("unknown field kind \"$kind\""))
    end
    n = Int(d["n_params"])
    ax = param_axes(d["params"], n, ops)
    return Bridge(field, ax, n, String(spec_json))
end

# --- the counted right-hand side ------------------------------------------------------------

"Bump the evaluation counter (invisible to AD)."
count!(c::Base.RefValue{Int}) = (c[] += 1; nothing)
ChainRulesCore.@non_differentiable count!(::Any)

"""
    BridgeRHS(kind, axes, counter)

Out-of-place `rhs(u, p, t)` with `p` the flat parameter vector, viewed as a ComponentArray
inside (Zygote-friendly: no mutation). Every call bumps `counter`, which gives the backward
NFE (one per vector-Jacobian product).
"""
struct BridgeRHS{K, A}
    kind::K
    axes::A
    counter::Base.RefValue{Int}
end
BridgeRHS(b::Bridge) = BridgeRHS(b.kind, b.axes, Ref(0))

function (r::BridgeRHS)(u, p, t)
    count!(r.counter)
    θ = ComponentArray(p, r.axes)
    return evaluate(r.kind, u, θ, t)
end

# A pyhbnode vector field rebuilt from its JSON spec: plain structs over one flat parameter
# vector `p`, each parameter block read as `reshape(p[range], size)` (Zygote-friendly: no
# mutation, no nested parameter containers; GPU-friendly: no scalar indexing, so `p` and the
# state may be CUDA arrays). Mirrored in numpy by tests/julia_emulate.py.

# --- activations, with torch's definitions (`oftype` keeps Float32 Float32 and works on
# the ForwardDiff duals Zygote broadcasts with) ----------------------------------------

struct Tanh end
(::Tanh)(x) = tanh(x)

struct ReLU end
(::ReLU)(x) = x > zero(x) ? x : zero(x)

struct Sigmoid end
(::Sigmoid)(x) = x >= zero(x) ? inv(one(x) + exp(-x)) : exp(x) / (one(x) + exp(x))

struct ELU
    alpha::Float64
end
(f::ELU)(x) = x > zero(x) ? x : oftype(x, f.alpha) * expm1(x)

struct LeakyReLU
    slope::Float64
end
(f::LeakyReLU)(x) = x > zero(x) ? x : oftype(x, f.slope) * x

struct HardTanh
    lo::Float64
    hi::Float64
end
(f::HardTanh)(x) = clamp(x, oftype(x, f.lo), oftype(x, f.hi))

"torch's `Softplus(beta, threshold)`: `x` where `beta * x > threshold`, else `log1p(exp(beta x)) / beta`."
struct Softplus
    beta::Float64
    threshold::Float64
end
(f::Softplus)(x) = oftype(x, f.beta) * x > oftype(x, f.threshold) ? x :
    log1p(exp(oftype(x, f.beta) * x)) / oftype(x, f.beta)

struct Identity end
(::Identity)(x) = x

# Derivatives as torch's backward defines them (ReLU and HardTanh: 0 at the kinks;
# Softplus: 1 above its threshold), from the input `x` and the output `y = f(x)`.
derivative(::Tanh, x, y) = one(y) - y * y
derivative(::ReLU, x, y) = x > zero(x) ? one(x) : zero(x)
derivative(::Sigmoid, x, y) = y * (one(y) - y)
derivative(f::ELU, x, y) = x > zero(x) ? one(x) : oftype(x, f.alpha) * exp(x)
derivative(f::LeakyReLU, x, y) = x > zero(x) ? one(x) : oftype(x, f.slope)
derivative(f::HardTanh, x, y) = oftype(x, f.lo) < x < oftype(x, f.hi) ? one(x) : zero(x)
derivative(f::Softplus, x, y) = oftype(x, f.beta) * x > oftype(x, f.threshold) ? one(x) :
    Sigmoid()(oftype(x, f.beta) * x)
derivative(::Identity, x, y) = one(x)

"""
    activate(f, x) = f.(x)

With its own `rrule`: Zygote's broadcast takes its fast dual-number path only for singleton
`Function`s (`_dual_purefun`, Zygote v0.7.12 `src/lib/broadcast.jl:201`), which none of the
activation structs are (plain callable structs, not `Function`s), and otherwise runs one
closure pullback per element in every vector-Jacobian product on the CPU (on the GPU it takes
Zygote's forward-mode broadcast for any function). The rule makes it one fused
broadcast forward and one backward, on the CPU and the GPU alike.
"""
activate(f, x::AbstractArray) = f.(x)

function ChainRulesCore.rrule(::typeof(activate), f, x::AbstractArray)
    y = activate(f, x)
    function activate_pullback(Δ)
        dx = ChainRulesCore.unthunk(Δ) .* derivative.((f,), x, y)
        return ChainRulesCore.NoTangent(), ChainRulesCore.NoTangent(), dx
    end
    return y, activate_pullback
end

"The activation of a spec entry `{\"kind\": \"act\", \"fn\": ...}`."
function make_act(d)
    fn = String(d["fn"])
    fn == "tanh" && return Tanh()
    fn == "relu" && return ReLU()
    fn == "sigmoid" && return Sigmoid()
    fn == "elu" && return ELU(Float64(d["alpha"]))
    fn == "lrelu" && return LeakyReLU(Float64(d["slope"]))
    fn == "hardtanh" && return HardTanh(Float64(d["lo"]), Float64(d["hi"]))
    fn == "softplus" && return Softplus(Float64(d["beta"]), Float64(d["threshold"]))
    fn == "identity" && return Identity()
    throw(SpecError("unknown activation \"$fn\""))
end

# --- layers: each maps (x, p, t) -> y on Julia-ordered arrays (batch last, channel next) ---

"A parameter block: `reshape(p[range], size)`."
struct Block{N}
    range::UnitRange{Int}
    size::NTuple{N, Int}
end
read_block(b::Block, p) = reshape(p[b.range], b.size)

"torch `nn.Linear` = `W * x .+ b` on the first Julia dimension (torch's last)."
struct Dense{B}
    weight::Block{2}
    bias::B             # Block{1} or nothing
end

"torch `nn.ConvNd` (a cross-correlation) with kernel, stride, dilation and padding already
in Julia's spatial order; `pad` is `(lo_1, hi_1, lo_2, hi_2, ...)`."
struct Conv{N, B, P, Q}
    weight::Block{N}
    bias::B
    stride::P
    dilation::P
    pad::Q
    groups::Int
end

"pyhbnode's `TPad`: append a channel filled with `t` (Julia dim `ndims - 1`)."
struct TPad end

struct Act{F}
    f::F
end

function apply(l::Dense, x, p, t)
    W = read_block(l.weight, p)
    y = W * reshape(x, size(x, 1), :)
    if l.bias !== nothing
        y = y .+ read_block(l.bias, p)
    end
    return reshape(y, (size(W, 1), Base.tail(size(x))...))
end

function apply(l::Conv, x, p, t)
    # NNlib's `flipped = true` is the cross-correlation torch computes (kernel not flipped:
    # `kproj(k, _, Val(true)) = k` in NNlib's conv_direct.jl).
    y = NNlib.conv(x, read_block(l.weight, p); stride = l.stride, pad = l.pad,
        dilation = l.dilation, flipped = true, groups = l.groups)
    l.bias === nothing && return y
    b = read_block(l.bias, p)
    return y .+ reshape(b, (ntuple(_ -> 1, ndims(y) - 2)..., length(b), 1))
end

"A channel of size `sz` filled with `t`, on `x`'s device (not differentiated: `t` is never a parameter)."
function tchannel(x::AbstractArray{T}, sz, t) where {T}
    return fill!(similar(x, T, sz), T(t))
end
ChainRulesCore.@non_differentiable tchannel(::Any...)

function apply(::TPad, x::AbstractArray{T, N}, p, t) where {T, N}
    sz = ntuple(i -> i == N - 1 ? 1 : size(x, i), Val(N))
    return cat(x, tchannel(x, sz, t); dims = N - 1)
end

apply(l::Act, x, p, t) = activate(l.f, x)

apply_all(::Tuple{}, x, p, t) = x
apply_all(ls::Tuple, x, p, t) = apply_all(Base.tail(ls), apply(first(ls), x, p, t), p, t)

_ints(v) = Tuple(Int(x) for x in v)

"The spec's parameter entries as `(key, role) => Block`, checked to tile `1:n` in order."
function blocks(params, n::Int)
    out = Dict{Tuple{String, String}, Block}()
    next = 1
    for e in params
        sz = _ints(e["size"])
        off = Int(e["offset"])
        off + 1 == next || throw(SpecError("parameter $(e["key"]).$(e["role"]) starts at $off, expected $(next - 1)"))
        out[(String(e["key"]), String(e["role"]))] = Block(off + 1:off + prod(sz), sz)
        next = off + prod(sz) + 1
    end
    next - 1 == n || throw(SpecError("the parameter blocks cover $(next - 1) entries, the spec says n_params = $n"))
    return out
end

function make_layers(net, blk)
    layers = Any[]
    for d in net
        kind = String(d["kind"])
        key = String(get(d, "key", ""))
        bias = Bool(get(d, "bias", false)) ? blk[(key, "bias")] : nothing
        if kind == "dense"
            w = blk[(key, "weight")]
            w.size == (Int(d["out"]), Int(d["in"])) || throw(SpecError("dense $key weight has size $(w.size)"))
            push!(layers, Dense(w, bias))
        elseif kind == "conv"
            w = blk[(key, "weight")]
            push!(layers, Conv(w, bias, _ints(d["stride"]), _ints(d["dilation"]), _ints(d["pad"]), Int(d["groups"])))
        elseif kind == "act"
            push!(layers, Act(make_act(d)))
        elseif kind == "tpad"
            push!(layers, TPad())
        else
            throw(SpecError("unknown layer kind \"$kind\""))
        end
    end
    return Tuple(layers)
end

# --- coefficients: γ = ε·sigmoid(ω) (or fixed), ξ = softplus(χ) (or fixed) -----------------

struct Fixed
    value::Float64
end
struct SigmoidOf
    eps::Float64
    index::Int          # ω = p[index]
end
struct SoftplusOf
    index::Int          # χ = p[index]
end

# A learnable coefficient is a 1-element array read as `p[i:i]` (never `p[i]`: scalar
# indexing is an error on a CUDA array), broadcast against the state.
coef(c::Fixed, p, ::Type{T}) where {T} = T(c.value)
coef(c::SigmoidOf, p, ::Type{T}) where {T} = T(c.eps) .* activate(Sigmoid(), p[c.index:c.index])
coef(c::SoftplusOf, p, ::Type{T}) where {T} = activate(Softplus(1.0, 20.0), p[c.index:c.index])   # F.softplus defaults

function make_coef(d, blk, key)
    kind = String(d["kind"])
    kind == "fixed" && return Fixed(Float64(d["value"]))
    kind == "sigmoid" && return SigmoidOf(Float64(d["eps"]), first(blk[(key, "value")].range))
    kind == "softplus" && return SoftplusOf(first(blk[(key, "value")].range))
    throw(SpecError("unknown coefficient kind \"$kind\""))
end

# --- the three field kinds ----------------------------------------------------------------

"""NODE / ANODE: `du = f(u, t)`; `u` is `(features..., B)`."""
struct FirstOrder{L}
    net::L
end

"""SONODE: `u = (features..., C, 2, B)`; `dh = v`, `dv = f([h; v], t)` where f sees
`(features..., 2C, B)` (torch's `flatten(1, 2)`: the same memory)."""
struct SecondOrder{L}
    net::L
end

"""(G)HBNODE (eq. 10, 15): `dh = σ(m)`, `dm = f(h, t) - γ m - ξ h`; HBNODE is σ = identity, ξ = 0."""
struct HeavyBall{L, S, G, X}
    net::L
    sigma::S
    gamma::G
    xi::X
end

evaluate(k::FirstOrder, u, p, t) = apply_all(k.net, u, p, t)

"Whether the field has a convolution (those run on the CPU only: no cuDNN is pinned)."
has_conv(k) = any(l -> l isa Conv, k.net)

function evaluate(k::SecondOrder, u::AbstractArray{T, N}, p, t) where {T, N}
    sz = size(u)
    fsz = sz[1:(N - 2)]                       # (features..., C)
    F, B = prod(fsz), sz[N]
    x = reshape(u, (fsz[1:(end - 1)]..., 2 * fsz[end], B))
    v = reshape(u, 2F, B)[(F + 1):(2F), :]   # rows 1:F = h, F+1:2F = v
    dv = reshape(apply_all(k.net, x, p, t), F, B)
    return reshape(vcat(v, dv), sz)
end

function evaluate(k::HeavyBall, u::AbstractArray{T, N}, p, t) where {T, N}
    sz = size(u)
    fsz = sz[1:(N - 2)]
    F, B = prod(fsz), sz[N]
    u2 = reshape(u, 2F, B)                    # rows 1:F = h, F+1:2F = m
    h, m = u2[1:F, :], u2[(F + 1):(2F), :]
    f = reshape(apply_all(k.net, reshape(h, (fsz..., B)), p, t), F, B)
    dh = activate(k.sigma, m)
    dm = f .- coef(k.gamma, p, T) .* m .- coef(k.xi, p, T) .* h
    return reshape(vcat(dh, dm), sz)
end

"""
    Bridge

A field rebuilt from a spec: its kind, the length of the flat parameter vector and the spec text.
"""
struct Bridge{K}
    kind::K
    n_params::Int
    spec::String
end
Base.show(io::IO, b::Bridge) = print(io, "PyHBNODEBridge.Bridge(", nameof(typeof(b.kind)), ", ", b.n_params, " parameters)")

"""
    build(spec_json) -> Bridge

Rebuild a pyhbnode field from the JSON written by pyhbnode's `_spec.describe`.
"""
function build(spec_json::AbstractString)
    d = JSON.parse(String(spec_json))
    fmt = Int(d["format"])
    fmt == SPEC_FORMAT || throw(SpecError("spec format $fmt, this PyHBNODEBridge reads $SPEC_FORMAT: reinstall pyhbnode"))
    n = Int(d["n_params"])
    blk = blocks(d["params"], n)
    net = make_layers(d["net"], blk)
    kind = String(d["kind"])
    field = if kind == "first_order"
        FirstOrder(net)
    elseif kind == "sonode"
        SecondOrder(net)
    elseif kind == "heavyball"
        HeavyBall(net, make_act(d["sigma"]), make_coef(d["gamma"], blk, "omega"), make_coef(d["xi"], blk, "chi"))
    else
        throw(SpecError("unknown field kind \"$kind\""))
    end
    return Bridge(field, n, String(spec_json))
end

# --- the counted right-hand side ------------------------------------------------------------

"Bump the evaluation counter (invisible to AD)."
count!(c::Base.RefValue{Int}) = (c[] += 1; nothing)
ChainRulesCore.@non_differentiable count!(::Any)

"""
    BridgeRHS(kind, counter)

Out-of-place `rhs(u, p, t)` with `p` the flat parameter vector. Every call bumps
`counter`: the forward NFE, and during the adjoint one per vector-Jacobian product.
"""
struct BridgeRHS{K}
    kind::K
    counter::Base.RefValue{Int}
end
BridgeRHS(b::Bridge) = BridgeRHS(b.kind, Ref(0))

function (r::BridgeRHS)(u, p, t)
    count!(r.counter)
    return evaluate(r.kind, u, p, t)
end

# Layers of the network f, rebuilt from the spec's "net" list.
#
# Mirrors `make_act`, `tpad`, `dense`, `conv` and `EmulatedField.apply_ops` in
# pyhbnode/julia/emulate.py. Every op maps (x, θ, t) -> y on Julia-ordered arrays whose last
# dimension is the batch and whose second-to-last is the channel (torch dim 1).

abstract type Op end

"""A Lux layer (`Dense`, `Conv`) whose parameters are `θ.<K>` (`K` = the spec's `key`)."""
struct LuxOp{L, K} <: Op
    layer::L
end
LuxOp(layer, key::Symbol) = LuxOp{typeof(layer), key}(layer)
layer_key(::LuxOp{L, K}) where {L, K} = K

"""An elementwise activation."""
struct ActOp{F} <: Op
    f::F
end

"""pyhbnode's `TPad`: append a channel filled with `t` (Julia dim `ndims - 1`)."""
struct TPadOp <: Op end

# Activations with torch's definitions. `oftype` keeps Float32 states Float32 and works on
# the dual numbers Zygote broadcasts with.
struct ELU
    α::Float64
end
(f::ELU)(x) = x > zero(x) ? x : oftype(x, f.α) * (exp(x) - one(x))

struct LeakyReLU
    slope::Float64
end
(f::LeakyReLU)(x) = x > zero(x) ? x : oftype(x, f.slope) * x

struct HardTanh
    lo::Float64
    hi::Float64
end
(f::HardTanh)(x) = clamp(x, oftype(x, f.lo), oftype(x, f.hi))

"""
    make_act(d) -> Union{ActOp, Nothing}

The activation of a spec entry `{"kind": "act", "fn": ...}`; `nothing` for the identity.
"""
function make_act(d)
    fn = String(d["fn"])
    fn == "tanh" && return ActOp(tanh)
    fn == "relu" && return ActOp(NNlib.relu)
    fn == "elu" && return ActOp(ELU(Float64(d["alpha"])))
    fn == "lrelu" && return ActOp(LeakyReLU(Float64(d["slope"])))
    fn == "hardtanh" && return ActOp(HardTanh(Float64(d["lo"]), Float64(d["hi"])))
    fn == "sigmoid" && return ActOp(NNlib.sigmoid)
    fn == "softplus" && return ActOp(NNlib.softplus)
    fn == "identity" && return nothing
    throw(SpecError("unknown activation \"$fn\""))
end

_ints(v) = Tuple(Int(x) for x in v)

"""
    build_ops(net) -> Tuple

The ops of the spec's `"net"` list, in order. Dense: `Lux.Dense(in => out)` whose
`(out, in)` column-major weight is torch's `W.t()`; it acts on the first Julia dimension
(torch's last), as `nn.Linear` does. Conv: `Lux.Conv(kernel, in => out;
cross_correlation = true)` (torch convolutions are cross-correlations) with kernel, stride,
dilation and padding already in Julia's spatial order `(w, h, ...)`; the padding tuple is
`(lo_w, hi_w, lo_h, hi_h, ...)`.
"""
function build_ops(net)
    ops = Any[]
    for d in net
        kind = String(d["kind"])
        if kind == "dense"
            layer = Lux.Dense(Int(d["in"]) => Int(d["out"]); use_bias = Bool(d["bias"]))
            push!(ops, LuxOp(layer, Symbol(d["key"])))
        elseif kind == "conv"
            layer = Lux.Conv(
                _ints(d["kernel"]), Int(d["in"]) => Int(d["out"]);
                stride = _ints(d["stride"]), dilation = _ints(d["dilation"]),
                pad = _ints(d["pad"]), groups = Int(d["groups"]),
                use_bias = Bool(d["bias"]), cross_correlation = true,
            )
            push!(ops, LuxOp(layer, Symbol(d["key"])))
        elseif kind == "act"
            act = make_act(d)
            act === nothing || push!(ops, act)
        elseif kind == "tpad"
            push!(ops, TPadOp())
        else
            throw(SpecError("unknown layer kind \"$kind\""))
        end
    end
    return Tuple(ops)
end

"""A channel of size `sz` filled with `t` (not differentiated: `t` is never a parameter)."""
function tchannel(x::AbstractArray{T}, sz, t) where {T}
    c = similar(x, T, sz)
    fill!(c, T(t))
    return c
end
ChainRulesCore.@non_differentiable tchannel(::Any...)

function tpad(x::AbstractArray{T, N}, t) where {T, N}
    sz = ntuple(i -> i == N - 1 ? 1 : size(x, i), Val(N))
    return cat(x, tchannel(x, sz, t); dims = N - 1)
end

apply_op(op::LuxOp{L, K}, x, θ, t) where {L, K} =
    first(Lux.apply(op.layer, x, getproperty(θ, Val(K)), NamedTuple()))
apply_op(op::ActOp, x, θ, t) = op.f.(x)
apply_op(::TPadOp, x, θ, t) = tpad(x, t)

apply_ops(::Tuple{}, x, θ, t) = x
apply_ops(ops::Tuple, x, θ, t) = apply_ops(Base.tail(ops), apply_op(first(ops), x, θ, t), θ, t)

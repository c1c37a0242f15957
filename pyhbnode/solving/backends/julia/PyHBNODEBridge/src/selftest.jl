# A small end-to-end check, run by pyhbnode's availability probe and by
# `python -m pyhbnode.solving.backends.julia install`: build, one RHS against a hand computation, a DP5
# solve, an adjoint, and one parameter gradient against central differences.

"A GHBNODE over dense(2 → 3) → tanh → tpad → dense(4 → 2), γ = sigmoid(ω), ξ = softplus(χ)."
const SELFTEST_SPEC = """
{"format":2,"kind":"heavyball","model":"ghbnode","order":2,
 "gamma":{"kind":"sigmoid","eps":1.0},"xi":{"kind":"softplus"},
 "sigma":{"kind":"act","fn":"tanh"},
 "net":[{"kind":"dense","key":"layer_1","in":2,"out":3,"bias":true},
        {"kind":"act","fn":"tanh"},{"kind":"tpad"},
        {"kind":"dense","key":"layer_4","in":4,"out":2,"bias":true}],
 "params":[{"key":"layer_1","role":"weight","name":"f.layers.0.weight","offset":0,"size":[3,2]},
           {"key":"layer_1","role":"bias","name":"f.layers.0.bias","offset":6,"size":[3]},
           {"key":"layer_4","role":"weight","name":"f.layers.3.weight","offset":9,"size":[2,4]},
           {"key":"layer_4","role":"bias","name":"f.layers.3.bias","offset":17,"size":[2]},
           {"key":"omega","role":"value","name":"damping.omega","offset":19,"size":[1]},
           {"key":"chi","role":"value","name":"restoring.chi","offset":20,"size":[1]}],
 "n_params":21}
"""

selftest_params(::Type{T}) where {T} = T[0.1 * sin(3.0 * i) for i in 1:21]
selftest_state(::Type{T}) where {T} = T[0.5 * cos(2.0 * i) for i in 1:12]   # size (2, 2, 3)

"The selftest field evaluated by hand (plain loops, none of the bridge's layers)."
function selftest_rhs_by_hand(u, p, t)
    W1 = reshape(p[1:6], 3, 2); b1 = p[7:9]
    W2 = reshape(p[10:17], 2, 4); b2 = p[18:19]
    γ = 1 / (1 + exp(-p[20])); ξ = log1p(exp(-abs(p[21]))) + max(p[21], 0)
    du = similar(u)
    for b in axes(u, 3)
        h = u[:, 1, b]; m = u[:, 2, b]
        z = vcat(tanh.(W1 * h .+ b1), t)
        f = W2 * z .+ b2
        du[:, 1, b] = tanh.(m)
        du[:, 2, b] = f .- γ .* m .- ξ .* h
    end
    return du
end

"""
    selftest(; verbose = false) -> Bool

`true` when the bridge builds, evaluates, solves and differentiates the selftest field
correctly on the CPU in Float64, with both adjoints.
"""
function selftest(; verbose::Bool = false)
    T = Float64
    b = build(SELFTEST_SPEC)
    p = selftest_params(T)
    u = selftest_state(T)
    sz = (2, 2, 3)
    du = rhs(b, u, sz, p, 0.3)
    ok_rhs = isapprox(du, vec(selftest_rhs_by_hand(reshape(u, sz), p, 0.3)); rtol = 1.0e-12, atol = 1.0e-14)
    ts = T[0.0, 0.5, 1.0]
    loss(q) = sum(forward(b, u, sz, q, ts; rtol = 1.0e-11, atol = 1.0e-11, keep = false).ys)
    k, h = 20, 1.0e-6                     # ω, the damping parameter
    e = zeros(T, 21); e[k] = h
    fd = (loss(p .+ e) - loss(p .- e)) / (2h)
    ok = ok_rhs
    for alg in ("backsolve", "interpolating")
        fw = forward(b, u, sz, p, ts; rtol = 1.0e-10, atol = 1.0e-10, sensealg = alg)
        ok_fw = fw.success && fw.nf > 0 && length(fw.ys) == 12 * 3
        bw = backward(fw, ones(T, 36))
        ok_bw = bw.finite && bw.reached_t0 && !bw.hit_maxiters && bw.nfe > 0 && length(bw.dp) == 21
        ok_grad = ok_bw && isapprox(bw.dp[k], fd; rtol = 1.0e-4, atol = 1.0e-7)
        verbose && @info "PyHBNODEBridge.selftest" alg ok_rhs ok_fw ok_bw ok_grad fw.nf fw.counter bw.nfe fd
        ok = ok && ok_fw && ok_bw && ok_grad
    end
    return ok
end

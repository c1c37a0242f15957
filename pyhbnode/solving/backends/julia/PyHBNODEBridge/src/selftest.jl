# A small end-to-end check, run by `python -m pyhbnode.solving.backends.julia install` and
# Pkg.test (not by the availability probe): build, one RHS against a hand computation, DP5
# solves and both adjoints of a GHBNODE, and gradients against a closed form.

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

"A linear NODE `du/dt = w u` on one feature: `u(t) = u0 exp(w t)`, the selftest's closed form."
const LINEAR_SPEC = """
{"format":2,"kind":"first_order","model":"node","order":1,
 "net":[{"kind":"dense","key":"layer_1","in":1,"out":1,"bias":false}],
 "params":[{"key":"layer_1","role":"weight","name":"f.weight","offset":0,"size":[1,1]}],
 "n_params":1}
"""

"""
    selftest(; verbose = false) -> Bool

`true` when the bridge builds, evaluates, solves and differentiates correctly on the CPU in
Float64, with both adjoints.

Tolerances: the GHBNODE right-hand side is the same arithmetic as the hand computation
(1e-12). Gradients are checked on the linear NODE against its closed form, `L = Σ u(1)`,
`dL/dw = Σ u0 e^w`, `dL/du0 = e^w`: DP5 at rtol = atol = 1e-10 keeps the forward and the
adjoint's local errors near 1e-10, and over t ∈ [0, 1] with w = 0.7 they grow by at most
e^0.7 ≈ 2, so 1e-7 leaves a margin of three orders of magnitude and needs no finite
differences (whose truncation and solver-noise errors made the old check's margin thin).
"""
function selftest(; verbose::Bool = false)
    T = Float64
    b = build(SELFTEST_SPEC)
    p = selftest_params(T)
    u = selftest_state(T)
    sz = (2, 2, 3)
    du = rhs(b, u, sz, p, 0.3)
    ok = isapprox(du, vec(selftest_rhs_by_hand(reshape(u, sz), p, 0.3)); rtol = 1.0e-12, atol = 1.0e-14)
    verbose && @info "PyHBNODEBridge.selftest: GHBNODE right-hand side" ok
    ts = T[0.0, 0.5, 1.0]
    lin = build(LINEAR_SPEC)
    w, u0 = 0.7, T[1.0, 2.0]
    for alg in ("backsolve", "interpolating")
        fw = forward(b, u, sz, p, ts; rtol = 1.0e-10, atol = 1.0e-10, sensealg = alg)
        bw = fw.success ? backward(fw, ones(T, 36)) : nothing
        ok_ghb = fw.success && fw.nf > 0 && length(fw.ys) == 36 && bw.finite && bw.reached_t0 &&
            !bw.hit_maxiters && bw.nfe > 0 && length(bw.dp) == 21
        fl = forward(lin, u0, (1, 2), T[w], T[0.0, 1.0]; rtol = 1.0e-10, atol = 1.0e-10, sensealg = alg)
        bl = fl.success ? backward(fl, T[0, 0, 1, 1]) : nothing
        ok_lin = fl.success && bl.reached_t0 && isapprox(bl.dp[1], sum(u0) * exp(w); rtol = 1.0e-7) &&
            isapprox(bl.du0, fill(exp(w), 2); rtol = 1.0e-7)
        verbose && @info "PyHBNODEBridge.selftest" alg ok_ghb ok_lin fw.nf (bw === nothing ? -1 : bw.nfe)
        ok = ok && ok_ghb && ok_lin
    end
    return ok
end

# Tests of PyHBNODEBridge on its own (no Python needed):
#
#   julia --project=pyhbnode/solving/backends/julia/PyHBNODEBridge -e 'using Pkg; Pkg.test()'
#
# 1. selftest() and a hand-written cross-correlation pin the conv orientation and padding;
# 2. fixtures `zoo` (written by tests/julia_cases.py): the vector field of every zoo model
#    (learnable and fixed γ/ξ, every σ, MLP and conv with tpad) at closed-form parameters
#    and state must give torch's RHS to 1e-10;
# 3. fixtures `cases`: every model on an MLP and a conv field with torch's RHS, trajectory
#    and gradients: the solve must match to 1e-7 and both adjoints to 1e-4;
# 4. both adjoints against `Zygote.pullback` through `solve(...; sensealg)` and against
#    central finite differences;
# 5. NFE counters, retcodes, the adjoint maxiters guard, seminorm, Float32, spec errors;
# 6. the activations' hand-written derivatives (their `rrule`) against central differences;
# 7. on a machine where `CUDA.functional()`: MLP fields on the GPU equal the CPU, conv
#    fields are refused; elsewhere that testset is skipped with a message.

using Test
using PyHBNODEBridge
using PyHBNODEBridge: build, rhs, forward, backward, selftest, BridgeRHS, SpecError, make_sensealg
using LinearAlgebra: norm, dot
using Zygote: Zygote
using CUDA: CUDA

const B = PyHBNODEBridge
const JSON = B.JSON
const SciMLBase = B.SciMLBase
const DP5 = B.DP5

const FIXTURES = JSON.parse(read(joinpath(@__DIR__, "fixtures", "cases.json"), String))
const CASES = FIXTURES["cases"]
const ADJOINTS = ("backsolve", "interpolating")

floats(v) = Float64[Float64(x) for x in v]
relerr(a, b) = norm(a .- b) / max(norm(b), 1.0e-12)
usize_of(c) = Tuple(Int(s) for s in c["usize"])
"`scale * sin(rate * k)`, k = 1..n: the fixtures' closed-form parameters and states."
formula(n, (scale, rate)) = Float64[Float64(scale) * sin(Float64(rate) * k) for k in 1:n]

"Naive cross-correlation on WHCN arrays, the definition torch uses."
function naive_xcorr(x, W, bias, pad)
    Wd, Hd, C, N = size(x)
    kw, kh, _, O = size(W)
    xp = zeros(eltype(x), Wd + pad[1] + pad[2], Hd + pad[3] + pad[4], C, N)
    xp[(pad[1] + 1):(pad[1] + Wd), (pad[3] + 1):(pad[3] + Hd), :, :] .= x
    ow, oh = size(xp, 1) - kw + 1, size(xp, 2) - kh + 1
    y = zeros(eltype(x), ow, oh, O, N)
    for n in 1:N, o in 1:O, j in 1:oh, i in 1:ow
        s = bias[o]
        for c in 1:C, b in 1:kh, a in 1:kw
            s += xp[i + a - 1, j + b - 1, c, n] * W[a, b, c, o]
        end
        y[i, j, o, n] = s
    end
    return y
end

linear_node() = """{"format":2,"kind":"first_order","model":"node","order":1,
  "net":[{"kind":"dense","key":"layer_1","in":1,"out":1,"bias":false}],
  "params":[{"key":"layer_1","role":"weight","name":"f.weight","offset":0,"size":[1,1]}],
  "n_params":1}"""

@testset "PyHBNODEBridge" begin
    @testset "selftest" begin
        @test selftest(; verbose = true)
    end

    @testset "conv orientation and (w, h) padding" begin
        # torch Conv2d(2, 3, kernel_size=(3, 2)) (kH=3, kW=2) with padding="same": the
        # Julia kernel is (kW, kH) = (2, 3), padding (lo_w, hi_w, lo_h, hi_h) = (0, 1, 1, 1).
        spec = """{"format":2,"kind":"first_order","model":"node","order":1,
          "net":[{"kind":"conv","key":"layer_1","in":2,"out":3,"kernel":[2,3],"stride":[1,1],
                  "dilation":[1,1],"pad":[0,1,1,1],"groups":1,"bias":true}],
          "params":[{"key":"layer_1","role":"weight","name":"w","offset":0,"size":[2,3,2,3]},
                    {"key":"layer_1","role":"bias","name":"b","offset":36,"size":[3]}],
          "n_params":39}"""
        b = build(spec)
        p = Float64[sin(1.7i) for i in 1:39]
        x = Float64[cos(0.3i) for i in 1:(5 * 4 * 2 * 2)]
        # conv keeps (W, H) = (5, 4) but outputs 3 channels: not a valid ODE state, but one
        # RHS evaluation is all this needs.
        y = rhs(b, x, (5, 4, 2, 2), p, 0.0)
        want = naive_xcorr(reshape(x, 5, 4, 2, 2), reshape(p[1:36], 2, 3, 2, 3), p[37:39], (0, 1, 1, 1))
        @test y ≈ vec(want) rtol = 1.0e-12
    end

    @testset "zoo field $(c["name"])" for c in FIXTURES["zoo"]
        b = build(c["spec"])
        usize = usize_of(c)
        p = formula(b.n_params, FIXTURES["p_formula"])
        u = formula(prod(usize), FIXTURES["u_formula"])
        want = floats(c["du"])
        du = rhs(b, u, usize, p, Float64(c["t"]))
        @test length(du) == length(want)
        @test maximum(abs, du .- want) <= 1.0e-10 * max(1.0, maximum(abs, want))
    end

    @testset "fixture $(c["name"]) / $alg" for c in CASES, alg in ADJOINTS
        b = build(c["spec"])
        usize = usize_of(c)
        p, u = floats(c["p"]), floats(c["u"])
        ts, cot = floats(c["ts"]), floats(c["cotangent"])
        @test b.n_params == length(p)
        du = rhs(b, u, usize, p, Float64(c["t"]))
        @test maximum(abs, du .- floats(c["du"])) <= 1.0e-12 * max(1.0, maximum(abs, floats(c["du"])))
        fw = forward(b, u, usize, p, ts; rtol = 1.0e-10, atol = 1.0e-10, sensealg = alg)
        @test fw.success
        @test fw.retcode == "Success"
        @test fw.counter == fw.nf
        @test maximum(abs, fw.ys .- floats(c["ys"])) <= 1.0e-7
        bw = backward(fw, cot)
        @test bw.finite
        @test bw.reached_t0
        @test !bw.hit_maxiters
        @test bw.nfe > 0
        @test relerr(bw.du0, floats(c["du0"])) <= 1.0e-4
        @test relerr(bw.dp, floats(c["dp"])) <= 1.0e-4
    end

    @testset "against Zygote.pullback: $(c["name"]) / $alg" for c in CASES[1:5], alg in ADJOINTS
        b = build(c["spec"])
        usize = usize_of(c)
        p, u0 = floats(c["p"]), reshape(floats(c["u"]), usize)
        ts, cot = floats(c["ts"]), floats(c["cotangent"])
        sensealg = make_sensealg(alg, b.n_params)
        prob = SciMLBase.ODEProblem{false}(BridgeRHS(b), u0, (ts[1], ts[end]), p)
        loss(u0, p) = dot(vec(cot), vec(Array(SciMLBase.solve(prob, DP5(); u0 = u0, p = p, saveat = ts,
            sensealg = sensealg, abstol = 1.0e-10, reltol = 1.0e-10))))
        val, pb = Zygote.pullback(loss, u0, p)
        gu0, gp = pb(1.0)
        fw = forward(b, vec(u0), usize, p, ts; rtol = 1.0e-10, atol = 1.0e-10, sensealg = alg)
        bw = backward(fw, cot)
        @test val ≈ dot(cot, fw.ys) rtol = 1.0e-8
        @test relerr(bw.du0, vec(gu0)) <= 1.0e-5
        @test relerr(bw.dp, gp) <= 1.0e-5
    end

    @testset "against finite differences: $(c["name"]) / $alg" for c in CASES[[3, 5, 8, 10]], alg in ADJOINTS
        b = build(c["spec"])
        usize = usize_of(c)
        p, u = floats(c["p"]), floats(c["u"])
        ts, cot = floats(c["ts"]), floats(c["cotangent"])
        L(u, p) = dot(cot, forward(b, u, usize, p, ts; rtol = 1.0e-12, atol = 1.0e-12, keep = false).ys)
        bw = backward(forward(b, u, usize, p, ts; rtol = 1.0e-11, atol = 1.0e-11, sensealg = alg), cot)
        h = 1.0e-6
        # the last parameters are ω and χ for (G)HBNODE
        for k in unique([1, length(p) ÷ 2, length(p) - 1, length(p)])
            e = zeros(length(p)); e[k] = h
            fd = (L(u, p .+ e) - L(u, p .- e)) / 2h
            @test bw.dp[k] ≈ fd rtol = 1.0e-4 atol = 1.0e-7
        end
        for k in (1, length(u))
            e = zeros(length(u)); e[k] = h
            fd = (L(u .+ e, p) - L(u .- e, p)) / 2h
            @test bw.du0[k] ≈ fd rtol = 1.0e-4 atol = 1.0e-7
        end
    end

    @testset "return codes" begin
        b = build(linear_node())
        fw = forward(b, [1.0, 2.0], (1, 2), [5.0], [0.0, 1.0]; maxiters = 5, rtol = 1.0e-10, atol = 1.0e-10)
        @test !fw.success
        @test fw.retcode == "MaxIters"
        @test fw.ys === nothing
        @test 0.0 < fw.t_reached < 1.0   # where DP5 stopped, not the last output time (0.0)
        # exponential growth past floatmax: not a success, and never a throw
        fw = forward(b, [1.0], (1, 1), [2000.0], [0.0, 1.0]; rtol = 1.0e-3, atol = 1.0e-3, maxiters = 100_000)
        @test !fw.success
        @test fw.retcode in ("Unstable", "DtLessThanMin", "DtNaN", "MaxIters")
    end

    @testset "adjoint maxiters guard: $alg" for alg in ADJOINTS
        b = build(linear_node())
        fw = forward(b, [1.0, 2.0], (1, 2), [0.7], [0.0, 0.5, 1.0]; rtol = 1.0e-10, atol = 1.0e-10, sensealg = alg)
        @test fw.success
        cut = backward(fw, ones(6); maxiters = 2)
        @test !cut.reached_t0   # the completion check, independent of the log text
        @test cut.hit_maxiters
        full = backward(fw, ones(6))
        @test full.reached_t0 && !full.hit_maxiters
    end

    @testset "linear NODE gradient is exact: $alg" for alg in ADJOINTS
        # y(t) = y0 exp(w t): dL/dw for L = Σ y(1) = Σ y0 exp(w)
        b = build(linear_node())
        fw = forward(b, [1.0, 2.0], (1, 2), [0.7], [0.0, 1.0]; rtol = 1.0e-11, atol = 1.0e-11, sensealg = alg)
        bw = backward(fw, [0.0, 0.0, 1.0, 1.0])
        @test bw.dp[1] ≈ 3.0 * exp(0.7) rtol = 1.0e-6
        @test bw.du0 ≈ fill(exp(0.7), 2) rtol = 1.0e-6
        # the cotangent at t0 goes straight to du0
        bw0 = backward(fw, [1.0, 0.0, 0.0, 0.0])
        @test bw0.du0 ≈ [1.0, 0.0] atol = 1.0e-9
    end

    @testset "field without parameters: $alg" for alg in ADJOINTS
        spec = """{"format":2,"kind":"first_order","model":"node","order":1,
          "net":[{"kind":"act","fn":"tanh"}],"params":[],"n_params":0}"""
        b = build(spec)
        fw = forward(b, [0.5, -0.2], (2, 1), nothing, [0.0, 1.0]; rtol = 1.0e-10, atol = 1.0e-10, sensealg = alg)
        bw = backward(fw, [0.0, 0.0, 1.0, 1.0])
        @test isempty(bw.dp)
        h = 1.0e-6
        L(u) = sum(forward(b, u, (2, 1), nothing, [0.0, 1.0]; rtol = 1.0e-12, atol = 1.0e-12, keep = false).ys[3:4])
        @test bw.du0[1] ≈ (L([0.5 + h, -0.2]) - L([0.5 - h, -0.2])) / 2h rtol = 1.0e-5
    end

    @testset "seminorm: $alg" for alg in ADJOINTS
        c = CASES[4]   # hbnode-mlp
        b = build(c["spec"])
        usize = usize_of(c)
        p, u, ts, cot = floats(c["p"]), floats(c["u"]), floats(c["ts"]), floats(c["cotangent"])
        full = backward(forward(b, u, usize, p, ts; rtol = 1.0e-9, atol = 1.0e-9, sensealg = alg), cot)
        semi = backward(forward(b, u, usize, p, ts; rtol = 1.0e-9, atol = 1.0e-9, sensealg = alg, seminorm = true), cot)
        @test relerr(semi.dp, floats(c["dp"])) <= 1.0e-4
        @test relerr(semi.du0, floats(c["du0"])) <= 1.0e-4
        @info "seminorm NFE (no ordering is guaranteed: see SemiNorm)" alg full.nfe semi.nfe
        @test isbitstype(B.SemiNorm)
    end

    @testset "seminorm definition" begin
        # what it guarantees: the parameter adjoint never enters; the rest is an RMS
        n, np = 3, 4
        λ, dp, y = [1.0, -2.0, 0.5], [10.0, 20.0, -30.0, 40.0], [0.1, 0.2, -0.3]
        back = B.SemiNorm(n, np, true)
        @test back([λ; dp; y], 0.0) ≈ sqrt((sum(abs2, λ) + sum(abs2, y)) / 6) rtol = 1.0e-15
        @test back([λ; 1.0e6 .* dp; y], 0.0) == back([λ; dp; y], 0.0)
        interp = B.SemiNorm(n, np, false)
        @test interp([λ; dp], 0.0) ≈ sqrt(sum(abs2, λ) / 3) rtol = 1.0e-15
        @test interp([λ; zero(dp)], 0.0) == interp([λ; dp], 0.0)
        # any other length (SciMLSensitivity's internal checks): the plain RMS
        @test interp(λ, 0.0) ≈ sqrt(sum(abs2, λ) / 3) rtol = 1.0e-15
        # not below the full RMS in general: here the parameter part is zero
        full_rms(v) = sqrt(sum(abs2, v) / length(v))
        @test interp([λ; zero(dp)], 0.0) > full_rms([λ; zero(dp)])
    end

    @testset "activation derivatives (their rrule) match central differences" begin
        acts = (B.Tanh(), B.ReLU(), B.Sigmoid(), B.ELU(0.7), B.LeakyReLU(0.05), B.HardTanh(-0.5, 0.8),
            B.Softplus(2.0, 5.0), B.Softplus(1.0, 20.0), B.Identity())
        xs = [-3.1, -0.7, -0.2, 0.3, 0.6, 1.4, 2.9]   # away from every kink
        h = 1.0e-6
        for f in acts
            fd = [(f(x + h) - f(x - h)) / 2h for x in xs]
            @test B.derivative.((f,), xs, f.(xs)) ≈ fd rtol = 1.0e-6 atol = 1.0e-8
            y, back = Zygote.pullback(x -> sum(B.activate(f, x) .* (1:length(xs))), xs)
            @test back(1.0)[1] ≈ fd .* (1:length(xs)) rtol = 1.0e-6 atol = 1.0e-8
        end
        @test B.derivative(B.ReLU(), 0.0, 0.0) == 0.0                 # torch: 0 at the kink
        @test B.derivative(B.HardTanh(-1.0, 1.0), 1.0, 1.0) == 0.0
        @test B.derivative(B.Softplus(2.0, 5.0), 3.0, 3.0) == 1.0     # above the threshold
    end

    @testset "Float32: $alg" for alg in ADJOINTS
        c = CASES[5]
        b = build(c["spec"])
        usize = usize_of(c)
        fw = forward(b, Float32.(floats(c["u"])), usize, Float32.(floats(c["p"])), Float32.(floats(c["ts"]));
            rtol = 1.0e-5, atol = 1.0e-5, sensealg = alg)
        @test fw.success
        @test eltype(fw.ys) == Float32
        @test maximum(abs, fw.ys .- floats(c["ys"])) <= 1.0e-3
        bw = backward(fw, Float32.(floats(c["cotangent"])))
        @test eltype(bw.dp) == Float32
        @test relerr(Float64.(bw.dp), floats(c["dp"])) <= 1.0e-2
    end

    @testset "torch softplus above its threshold" begin
        f = B.Softplus(2.0, 5.0)
        @test f(3.0) == 3.0                     # beta * x = 6 > 5: x itself
        @test f(2.0) ≈ log1p(exp(4.0)) / 2 rtol = 1.0e-15
        @test B.Softplus(1.0, 20.0)(25.0) == 25.0
    end

    @testset "errors" begin
        c = CASES[1]
        @test_throws SpecError build(replace(c["spec"], "\"format\":2" => "\"format\":99"))
        @test_throws SpecError build(replace(c["spec"], "\"offset\":0" => "\"offset\":1"; count = 1))
        b = build(c["spec"])
        usize = usize_of(c)
        u, p, ts = floats(c["u"]), floats(c["p"]), floats(c["ts"])
        @test_throws ArgumentError forward(b, u, usize, p, ts; sensealg = "direct")
        @test_throws ArgumentError forward(b, u, usize, p, ts; sensealg = "checkpointed")
        @test_throws DimensionMismatch forward(b, u, usize, p[2:end], ts)
        @test_throws ArgumentError forward(b, u, usize, Float32.(p), ts)
        fw = forward(b, u, usize, p, ts; keep = false)
        @test_throws ArgumentError backward(fw, floats(c["cotangent"]))
        @test B.exception_name(DimensionMismatch("x")) == "DimensionMismatch"
        @test_throws ArgumentError forward(b, u, usize, p, ts; device = "tpu")
        @test B.parse_device("cuda:1") == B.CUDADevice(1)
    end

    @testset "GPU (CUDA.jl $(pkgversion(CUDA)))" begin
        if !CUDA.functional()
            @info "GPU testset skipped: CUDA.functional() is false on this machine"
            @test_skip CUDA.functional()
        else
            CUDA.allowscalar(false)  # non-interactive runs already forbid it; explicit for interactive includes (IJulia warns)
            @test isempty(B.device_problem(B.CUDADevice(0)))
            @test !isempty(B.device_problem(B.CUDADevice(length(CUDA.devices()))))
            for c in filter(c -> occursin("mlp", c["name"]), CASES), alg in ADJOINTS
                b = build(c["spec"])
                usize = usize_of(c)
                p, u, ts, cot = floats(c["p"]), floats(c["u"]), floats(c["ts"]), floats(c["cotangent"])
                du = rhs(b, u, usize, p, Float64(c["t"]); device = "cuda:0")
                @test du ≈ rhs(b, u, usize, p, Float64(c["t"])) rtol = 1.0e-10
                fw = forward(b, u, usize, p, ts; rtol = 1.0e-10, atol = 1.0e-10, sensealg = alg, device = "cuda:0")
                @test fw.success && fw.u0 isa CUDA.CuArray && fw.ys isa Vector{Float64}
                @test maximum(abs, fw.ys .- floats(c["ys"])) <= 1.0e-7
                bw = backward(fw, cot)
                @test bw.finite && bw.reached_t0
                @test relerr(bw.du0, floats(c["du0"])) <= 1.0e-4
                @test relerr(bw.dp, floats(c["dp"])) <= 1.0e-4
            end
            conv = CASES[findfirst(c -> occursin("conv", c["name"]), CASES)]
            @test_throws ArgumentError forward(build(conv["spec"]), floats(conv["u"]), usize_of(conv),
                floats(conv["p"]), floats(conv["ts"]); device = "cuda:0")
        end
    end
end

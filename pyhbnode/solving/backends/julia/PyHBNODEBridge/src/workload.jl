# PrecompileTools workload: build + DP5 forward + both adjoints, Float64 and Float32, on the
# selftest field, so that most of the first-call JIT cost is paid at installation time
# (per-model structures still compile on first use: `pyhbnode.solving.backends.julia.warmup`).

@setup_workload begin
    sz = (2, 2, 3)
    @compile_workload begin
        try
            for T in (Float64, Float32)
                b = build(SELFTEST_SPEC)
                u = selftest_state(T)
                p = selftest_params(T)
                ts = T[0, 0.5]
                rhs(b, u, sz, p, 0.1)
                for alg in ("interpolating", "backsolve")
                    fw = forward(b, u, sz, p, ts; rtol = 1.0e-4, atol = 1.0e-4, sensealg = alg)
                    backward(fw, ones(T, length(fw.ys)))
                end
            end
        catch err
            @warn "PyHBNODEBridge precompile workload failed; the bridge still loads, run selftest()" exception = err
        end
    end
end

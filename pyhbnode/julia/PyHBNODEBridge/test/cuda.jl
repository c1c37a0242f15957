# GPU part of runtests.jl (included after `using CUDA, cuDNN`).
if CUDA.functional()
    @testset "CUDA: $(c["name"])" for c in FIXTURES[[4, 9]]
        b = build(c["spec"])
        usize = Tuple(Int(s) for s in c["usize"])
        p, u = CUDA.CuArray(floats(c["p"])), CUDA.CuArray(floats(c["u"]))
        ts, cot = floats(c["ts"]), CUDA.CuArray(floats(c["cotangent"]))
        @test Array(rhs(b, u, usize, p, Float64(c["t"]))) ≈ floats(c["du"]) rtol = 1.0e-10
        for name in ("interpolating", "backsolve")
            fw = forward(b, u, usize, p, ts; rtol = 1.0e-10, atol = 1.0e-10, sensealg = name)
            @test fw.success
            @test fw.ys isa CUDA.CuArray
            @test maximum(abs, Array(fw.ys) .- floats(c["ys"])) <= 1.0e-7
            bw = backward(fw, cot)
            @test bw.du0 isa CUDA.CuArray
            @test relerr(Array(bw.dp), floats(c["dp"])) <= 1.0e-4
            @test relerr(Array(bw.du0), floats(c["du0"])) <= 1.0e-4
        end
    end
    @testset "CUDA: select_device hook" begin
        PyHBNODEBridge.select_device(0)
        @test CUDA.device() == CUDA.CuDevice(0)
    end
else
    @info "CUDA.jl loaded but not functional: GPU tests skipped"
end

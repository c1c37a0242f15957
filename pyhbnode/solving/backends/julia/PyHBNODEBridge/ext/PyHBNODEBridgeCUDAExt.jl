# PyHBNODEBridge on CUDA arrays: loaded by Julia when both PyHBNODEBridge and CUDA.jl are
# (Project.toml [weakdeps]/[extensions]). Dense layers, broadcasts and the adjoint need no
# cuDNN; convolutions are refused before they get here (`forward`, `rhs`).
module PyHBNODEBridgeCUDAExt

using CUDA: CUDA, CuArray
using PyHBNODEBridge: PyHBNODEBridge, CUDADevice

# `device!` is task-local (CUDA.jl v5.9.7 lib/cudadrv/state.jl:324); every upload sets it,
# so the solve that follows runs on the device the tensors came from.
function PyHBNODEBridge.on_device(dev::CUDADevice, x::Array{T}) where {T <: Union{Float32, Float64}}
    CUDA.device!(dev.ordinal)
    return CuArray(x)
end

"Why CUDA device `ordinal` cannot run solves, or an empty string."
function cuda_problem(ordinal::Int)
    CUDA.functional() || return "CUDA.functional() is false: CUDA.jl found no usable driver or GPU"
    n = length(CUDA.devices())
    0 <= ordinal < n || return "CUDA.jl sees $n device(s), no cuda:$ordinal"
    return ""
end

end # module

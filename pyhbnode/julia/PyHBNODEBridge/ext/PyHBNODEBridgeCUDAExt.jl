"""
GPU support: loaded when `CUDA` and `cuDNN` are loaded next to PyHBNODEBridge
(`python -m pyhbnode.julia install --cuda` adds both to the environment; pyhbnode runs
`using CUDA, cuDNN` on the first CUDA tensor). CuArrays arrive zero-copy through DLPack
(DLPack.jl's CUDA extension); the solver then runs on the GPU because `u0` and `p` are
CuArrays, and NNlib's cuDNN extension serves the convolutions.
"""
module PyHBNODEBridgeCUDAExt

using CUDA: CUDA
using cuDNN: cuDNN
using PyHBNODEBridge: PyHBNODEBridge

# Julia tasks have their own CUDA streams: finish our work before torch reads the result.
PyHBNODEBridge.sync_device(::CUDA.AnyCuArray) = (CUDA.synchronize(); nothing)

function __init__()
    PyHBNODEBridge.DEVICE_HOOK[] = i -> CUDA.device!(i)
    return nothing
end

end # module
